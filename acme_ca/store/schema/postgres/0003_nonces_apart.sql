-- 0003: anti-replay nonces (RFC 8555 6.5), apart from the durable data.
--
-- On SQLite this version moves them to a file of their own; here they go into an
-- UNLOGGED table: its writes skip the write-ahead log (they are the most frequent
-- writes of all, and need not survive a crash), it is not replicated to a standby,
-- and crash recovery empties it. An emptied table voids every outstanding nonce (a
-- client gets badNonce and retries), which is what the contract asks: a consumption
-- lost in a crash can never let a request be replayed. A clean restart keeps them.
CREATE UNLOGGED TABLE nonces (
    nonce   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    expires TIMESTAMPTZ NOT NULL
);

-- Expired nonces are purged now and then, by expiry.
CREATE INDEX nonces_by_expiry ON nonces (expires);
