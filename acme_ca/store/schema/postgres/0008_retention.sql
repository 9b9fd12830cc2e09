-- 0008: retention (issue 11; SQLite's 0008 has the same meaning and the same indexes).
--
-- Store.prune_orders and Store.prune_authorizations delete, a bounded batch at a time,
-- the rows (of any status but a processing order's) whose expires is older than the
-- retention grace, the oldest first (by expires, then id). 0006's partial indexes hold
-- only the open rows; these hold them all, by (expires, id), so that "expired before
-- the cut" is one range read in the order the batch is taken, whatever the number of
-- rows still kept. (rate_limits_by_tat, 0007, serves Store.prune_limits.)
CREATE INDEX orders_by_expiry ON orders (expires, id);
CREATE INDEX authorizations_by_expiry ON authorizations (expires, id);

-- Store.count_pending_authorizations (the rate limit on an account's pending
-- authorizations, run for every new order): the pending ones of one account, the
-- expired among them skipped as a range; none of the many valid, expired or invalid
-- rows an account gathers is read.
CREATE INDEX authorizations_pending ON authorizations (account_id, expires)
    WHERE status = 'pending';
