-- 0007: who may get what (issue 11): profiles, External Account Binding, rate limits.
--
-- orders.profile: the profile the order asked for (draft-ietf-acme-profiles), or the
-- default it was given; checked again at finalize. Orders from before profiles were
-- all for the server profile.
ALTER TABLE orders ADD COLUMN profile TEXT NOT NULL DEFAULT 'server';

-- External Account Binding keys (RFC 8555 7.3.4). hmac_key is the secret shared with
-- the team that registers with it; profiles, domains and limits restrict what the
-- account it binds may get (JSON: an array of names, an array of domain suffixes, an
-- object of limit name -> "COUNT/DURATION"; empty: no restriction beyond the CA's).
CREATE TABLE eab_keys (
    kid        TEXT NOT NULL PRIMARY KEY,
    label      TEXT NOT NULL,
    hmac_key   BLOB NOT NULL,
    profiles   TEXT NOT NULL DEFAULT '[]',
    domains    TEXT NOT NULL DEFAULT '[]',
    limits     TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    expires    TEXT,
    revoked_at TEXT
);

-- The key an account was created with. A key binds one account: the unique index
-- makes two racing newAccount calls with one key create one account.
ALTER TABLE accounts ADD COLUMN eab_kid TEXT REFERENCES eab_keys (kid);
CREATE UNIQUE INDEX accounts_by_eab_kid ON accounts (eab_kid) WHERE eab_kid IS NOT NULL;

-- Rate limits as GCRA buckets (Boulder's ratelimits): one row per limit and key (an
-- account id, a client address, ...) holding its theoretical arrival time; a row
-- whose tat has passed is a full bucket, the same as no row, and may be deleted.
CREATE TABLE rate_limits (
    name TEXT NOT NULL,
    key  TEXT NOT NULL,
    tat  TEXT NOT NULL,
    PRIMARY KEY (name, key)
) WITHOUT ROWID;
CREATE INDEX rate_limits_by_tat ON rate_limits (tat);
