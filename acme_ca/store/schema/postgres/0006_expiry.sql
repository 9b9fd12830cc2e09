-- 0006: expiring orders and authorizations in the background (issue 10; SQLite's
-- 0006 has the same meaning).
--
-- Store.expire_orders and Store.expire_authorizations read the open rows whose expires
-- has passed, the oldest first, a bounded batch at a time. These partial indexes hold
-- only the rows that may still expire, by (expires, id), so that "expired by now" is
-- one range of them, whatever the number of settled rows beside them.
CREATE INDEX orders_open_by_expiry ON orders (expires, id)
    WHERE status IN ('pending', 'ready');
CREATE INDEX authorizations_open_by_expiry ON authorizations (expires, id)
    WHERE status IN ('pending', 'valid');
