-- 0002: the ACME resources of RFC 8555 7.1: accounts, orders, authorizations,
-- challenges, the order -> authorization list, and anti-replay nonces (6.5).
--
-- Same conventions as 0001: datetimes are fixed-width ISO 8601 UTC text
-- ("YYYY-MM-DDTHH:MM:SS.ffffffZ", text order is time order); booleans are 0/1;
-- contact and identifiers are JSON arrays; error columns hold an RFC 7807 problem
-- document as JSON text. Status values are the enums of acme_ca.domain.models.

CREATE TABLE accounts (
    id           TEXT NOT NULL PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('valid', 'deactivated', 'revoked')),
    jwk          TEXT NOT NULL,  -- the public key, RFC 7517 JSON
    thumbprint   TEXT NOT NULL,  -- RFC 7638 SHA-256, base64url; unique (index below)
    contact      TEXT NOT NULL DEFAULT '[]',
    terms_agreed INTEGER NOT NULL CHECK (terms_agreed IN (0, 1)),
    created_at   TEXT NOT NULL
);

-- newAccount and every JWS with an embedded jwk look the account up by its key;
-- the uniqueness makes two racing newAccount calls with one key create one account.
CREATE UNIQUE INDEX accounts_by_thumbprint ON accounts (thumbprint);

CREATE TABLE orders (
    id                 TEXT NOT NULL PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    status             TEXT NOT NULL
                       CHECK (status IN ('pending', 'ready', 'processing', 'valid', 'invalid')),
    identifiers        TEXT NOT NULL,  -- [{"type": "dns", "value": "..."}, ...]
    expires            TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    not_before         TEXT,
    not_after          TEXT,
    error              TEXT,
    certificate_serial TEXT REFERENCES certificates (serial),
    -- A valid order points at its certificate (finish_order sets both at once).
    CHECK (status <> 'valid' OR certificate_serial IS NOT NULL)
);

-- An account's orders list (RFC 8555 7.1.2.1), keyset-paginated oldest first.
CREATE INDEX orders_by_account ON orders (account_id, created_at, id);

CREATE TABLE authorizations (
    id               TEXT NOT NULL PRIMARY KEY,
    account_id       TEXT NOT NULL REFERENCES accounts (id),
    identifier_type  TEXT NOT NULL,
    identifier_value TEXT NOT NULL,  -- the base name: a wildcard's "*." is dropped
    wildcard         INTEGER NOT NULL CHECK (wildcard IN (0, 1)),
    status           TEXT NOT NULL CHECK (status IN (
                         'pending', 'valid', 'invalid', 'deactivated', 'expired', 'revoked')),
    expires          TEXT NOT NULL,
    created_at       TEXT NOT NULL
);

-- Reuse of a valid authorization by a new order, and revocation by an account that
-- holds authorizations for every name: account, name, status, then expiry as a range.
CREATE INDEX authorizations_for_reuse
    ON authorizations (account_id, identifier_value, status, expires);

CREATE TABLE challenges (
    id               TEXT NOT NULL PRIMARY KEY,
    authorization_id TEXT NOT NULL REFERENCES authorizations (id),
    type             TEXT NOT NULL,  -- "http-01", "dns-01", "tls-alpn-01"
    token            TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'processing', 'valid', 'invalid')),
    validated_at     TEXT,
    error            TEXT
);

-- An authorization's challenges, at most one of each type; also the lookup index.
CREATE UNIQUE INDEX challenges_by_authorization ON challenges (authorization_id, type);
-- Challenges a stopped process left processing, resumed at start: a small index.
CREATE INDEX challenges_processing ON challenges (status) WHERE status = 'processing';

-- The authorizations an order lists, in the order's own order (position 0, 1, ...).
-- An authorization may be listed by several orders when it is reused.
CREATE TABLE order_authorizations (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    authorization_id TEXT NOT NULL REFERENCES authorizations (id),
    position         INTEGER NOT NULL CHECK (position >= 0),
    PRIMARY KEY (order_id, position)
) WITHOUT ROWID;

-- The orders to update when an authorization becomes valid or invalid.
CREATE INDEX order_authorizations_by_authorization
    ON order_authorizations (authorization_id, order_id);

-- Nonces are written through a second connection without fsync (they need not
-- survive a crash); expired rows are purged now and then, by expiry.
CREATE TABLE nonces (
    nonce   TEXT NOT NULL PRIMARY KEY,
    expires TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX nonces_by_expiry ON nonces (expires);
