-- 0008: retention (issue 11; SQLite's 0008 has the same meaning).
--
-- Store.prune_orders and Store.prune_authorizations delete, a bounded batch at a time,
-- the rows of any status whose expires is older than the retention grace, the oldest
-- first. 0006's partial indexes hold only the open rows; these hold them all, by
-- (expires, id), so that "expired before the cut" is one range, whatever the number of
-- rows still kept. (rate_limits_by_tat, 0007, serves Store.prune_limits.)
CREATE INDEX orders_by_expiry ON orders (expires, id);
CREATE INDEX authorizations_by_expiry ON authorizations (expires, id);
