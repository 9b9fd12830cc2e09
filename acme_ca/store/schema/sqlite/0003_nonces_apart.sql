-- Nonces moved to a database file of their own (<name>-nonces.db, see
-- acme_ca/store/sqlite_open.py), whose writes never wait for this file's write lock.
-- Nonces need not survive (a lost one costs a client one badNonce retry), so the
-- old table is dropped, not copied.
DROP INDEX nonces_by_expiry;
DROP TABLE nonces;
