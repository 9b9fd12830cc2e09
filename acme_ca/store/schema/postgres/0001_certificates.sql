-- 0001: certificates, from the moment their serial is reserved (before signing).
--
-- PostgreSQL dialect of schema/sqlite/0001 (same version, same meaning). Datetimes are
-- timestamptz; names is a text array. Identifiers and keys compared or ordered by the
-- store are COLLATE "C" (byte order), so pages come in the same order as on SQLite,
-- whatever the database's locale.

CREATE TABLE certificates (
    serial            TEXT COLLATE "C" NOT NULL PRIMARY KEY
                      CHECK (serial ~ '^[0-9a-f]+$'),
    issuer            TEXT NOT NULL,  -- hex SHA-256 fingerprint of the issuing CA certificate
    names             TEXT[] NOT NULL,
    profile           TEXT NOT NULL,
    not_before        TIMESTAMPTZ NOT NULL,
    not_after         TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('reserved', 'issued', 'revoked')),
    der               BYTEA,
    account_id        TEXT COLLATE "C",
    order_id          TEXT COLLATE "C",
    revoked_at        TIMESTAMPTZ,
    revocation_reason SMALLINT CHECK (revocation_reason BETWEEN 0 AND 10),
    CHECK ((status = 'reserved') = (der IS NULL)),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
    CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
);

-- Listing pages, with and without a status filter.
CREATE INDEX certificates_by_created ON certificates (created_at, serial);
CREATE INDEX certificates_by_status ON certificates (status, created_at, serial);
-- Expiry sweeps, ARI and CRL building.
CREATE INDEX certificates_by_not_after ON certificates (not_after);
-- An account's or an order's certificates.
CREATE INDEX certificates_by_account ON certificates (account_id);
CREATE INDEX certificates_by_order ON certificates (order_id);
