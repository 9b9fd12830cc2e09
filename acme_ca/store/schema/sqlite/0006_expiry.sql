-- 0006: expiring orders and authorizations in the background (issue 10;
-- PostgreSQL's 0006 has the same meaning).
--
-- Store.expire_orders and Store.expire_authorizations read the open rows whose expires
-- has passed, the oldest first, a bounded batch at a time. These partial indexes hold
-- only the rows that may still expire, by expires, so that "expired by now" is one
-- range of them, whatever the number of settled rows beside them. A query uses one
-- only if its WHERE names the same status list.
CREATE INDEX orders_open_by_expiry ON orders (expires) WHERE status IN ('pending', 'ready');
CREATE INDEX authorizations_open_by_expiry ON authorizations (expires)
    WHERE status IN ('pending', 'valid');
