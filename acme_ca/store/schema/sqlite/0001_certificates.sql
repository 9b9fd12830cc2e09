-- 0001: certificates, from the moment their serial is reserved (before signing).
--
-- Datetimes are ISO 8601 UTC text of one fixed width, "YYYY-MM-DDTHH:MM:SS.ffffffZ",
-- so that text order is time order. names is a JSON array of strings.

CREATE TABLE certificates (
    serial            TEXT NOT NULL PRIMARY KEY
                      CHECK (serial <> '' AND serial NOT GLOB '*[^0-9a-f]*'),
    issuer            TEXT NOT NULL,  -- hex SHA-256 fingerprint of the issuing CA certificate
    names             TEXT NOT NULL,
    profile           TEXT NOT NULL,
    not_before        TEXT NOT NULL,
    not_after         TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('reserved', 'issued', 'revoked')),
    der               BLOB,
    account_id        TEXT,  -- becomes a reference to accounts when that table arrives
    order_id          TEXT,
    revoked_at        TEXT,
    revocation_reason INTEGER CHECK (revocation_reason BETWEEN 0 AND 10),
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
