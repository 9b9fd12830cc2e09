-- 0009: rotation and revocation that relying parties see (issue 12): ARI (RFC 9773),
-- CRLs (RFC 5280 5). PostgreSQL's 0009 has the same meaning and the same indexes.
--
-- certificates.renew_early_at: when an operator marked the certificate for early
-- renewal (`acme-ca certs renew-early`); its renewal information then suggests a
-- window in the past. certificates.replaced_by: the order that replaced it (RFC 9773
-- 5), set when that order becomes valid, kept when retention prunes the order.
ALTER TABLE certificates ADD COLUMN renew_early_at TEXT;
ALTER TABLE certificates ADD COLUMN replaced_by TEXT;

-- orders.replaces: the serial of the certificate the order names in "replaces". At
-- most one order that is not invalid replaces a certificate: the unique index makes
-- two racing newOrders with one "replaces" create one order (the other alreadyReplaced).
ALTER TABLE orders ADD COLUMN replaces TEXT REFERENCES certificates (serial);
CREATE UNIQUE INDEX orders_replacing ON orders (replaces)
    WHERE replaces IS NOT NULL AND status <> 'invalid';

-- Store.revoked_certificates (the CRL of one issuer, built every few seconds): the
-- revoked certificates of one issuer, the expired ones skipped as a range.
CREATE INDEX certificates_revoked ON certificates (issuer, not_after)
    WHERE status = 'revoked';

-- The last CRL published for each issuing CA certificate (by fingerprint), which every
-- replica serves. number only grows (Store.publish_crl is a compare-and-set on it),
-- across replicas and restarts (RFC 5280 5.2.3); entries is a digest of the revoked
-- serials it lists, so that a builder knows whether a new one is needed.
CREATE TABLE crls (
    issuer      TEXT NOT NULL PRIMARY KEY,
    number      INTEGER NOT NULL CHECK (number >= 1),
    this_update TEXT NOT NULL,
    next_update TEXT NOT NULL,
    entries     TEXT NOT NULL,
    der         BLOB NOT NULL,
    CHECK (next_update > this_update)
);
