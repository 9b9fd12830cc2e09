-- 0002: the ACME resources of RFC 8555 7.1: accounts, orders, authorizations,
-- challenges and the order -> authorization list.
--
-- PostgreSQL dialect of schema/sqlite/0002. Unlike SQLite's 0002 it creates no nonces
-- table: 0003 creates it UNLOGGED (on SQLite, 0003 moves nonces to a file of their
-- own), so that no version of this schema ever held durable nonces.
-- contact is a text array, identifiers a JSON array; error columns keep an RFC 7807
-- problem document as the text it was given. Status values are the enums of
-- acme_ca.domain.models.

CREATE TABLE accounts (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('valid', 'deactivated', 'revoked')),
    jwk          TEXT NOT NULL,  -- the public key, RFC 7517 JSON, as given
    thumbprint   TEXT COLLATE "C" NOT NULL,  -- RFC 7638 SHA-256, base64url
    contact      TEXT[] NOT NULL DEFAULT '{}',
    terms_agreed BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

-- newAccount and every JWS with an embedded jwk look the account up by its key;
-- the uniqueness makes two racing newAccount calls with one key create one account.
CREATE UNIQUE INDEX accounts_by_thumbprint ON accounts (thumbprint);

CREATE TABLE orders (
    id                 TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account_id         TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    status             TEXT NOT NULL
                       CHECK (status IN ('pending', 'ready', 'processing', 'valid', 'invalid')),
    identifiers        JSONB NOT NULL,  -- [{"type": "dns", "value": "..."}, ...]
    expires            TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    not_before         TIMESTAMPTZ,
    not_after          TIMESTAMPTZ,
    error              TEXT,
    certificate_serial TEXT COLLATE "C" REFERENCES certificates (serial),
    -- A valid order points at its certificate (finish_order sets both at once).
    CHECK (status <> 'valid' OR certificate_serial IS NOT NULL)
);

-- An account's orders list (RFC 8555 7.1.2.1), keyset-paginated oldest first.
CREATE INDEX orders_by_account ON orders (account_id, created_at, id);

CREATE TABLE authorizations (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    account_id       TEXT COLLATE "C" NOT NULL REFERENCES accounts (id),
    identifier_type  TEXT COLLATE "C" NOT NULL,
    identifier_value TEXT COLLATE "C" NOT NULL,  -- the base name: a wildcard's "*." is dropped
    wildcard         BOOLEAN NOT NULL,
    status           TEXT NOT NULL CHECK (status IN (
                         'pending', 'valid', 'invalid', 'deactivated', 'expired', 'revoked')),
    expires          TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

-- Reuse of a valid authorization by a new order, and revocation by an account that
-- holds authorizations for every name: account, name, status, then expiry as a range.
CREATE INDEX authorizations_for_reuse
    ON authorizations (account_id, identifier_value, status, expires);

CREATE TABLE challenges (
    id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    authorization_id TEXT COLLATE "C" NOT NULL REFERENCES authorizations (id),
    -- The challenges of an authorization in the order they were given (0, 1, ...):
    -- PostgreSQL has no rowid to keep it.
    position         SMALLINT NOT NULL CHECK (position >= 0),
    type             TEXT NOT NULL,  -- "http-01", "dns-01", "tls-alpn-01"
    token            TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'processing', 'valid', 'invalid')),
    validated_at     TIMESTAMPTZ,
    error            TEXT
);

-- An authorization's challenges, at most one of each type; also the lookup index.
CREATE UNIQUE INDEX challenges_by_authorization ON challenges (authorization_id, type);
-- Challenges a stopped process left processing: a small index (0005 replaces it).
CREATE INDEX challenges_processing ON challenges (status) WHERE status = 'processing';

-- The authorizations an order lists, in the order's own order (position 0, 1, ...).
-- An authorization may be listed by several orders when it is reused.
CREATE TABLE order_authorizations (
    order_id         TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
    authorization_id TEXT COLLATE "C" NOT NULL REFERENCES authorizations (id),
    position         INTEGER NOT NULL CHECK (position >= 0),
    PRIMARY KEY (order_id, position)
);

-- The orders to update when an authorization becomes valid or invalid.
CREATE INDEX order_authorizations_by_authorization
    ON order_authorizations (authorization_id, order_id);
