-- 0010: operations (issue 13): the tamper-evident audit log, and the indexes behind what
-- operators look at (the admin CLI, the dashboard). PostgreSQL dialect of
-- schema/sqlite/0010.
--
-- audit_log: append-only; seq runs 1, 2, 3 ... without gaps; hash is SHA-256 of the
-- entry's canonical form with prev_hash, the hash of the entry before it (domain/audit.py
-- chain_hash), so an edited or deleted entry breaks the chain (`acme-ca audit verify`).
-- identifiers is a JSON array, details a JSON object in canonical form (text: hashed as
-- written).
CREATE TABLE audit_log (
    seq         BIGINT NOT NULL PRIMARY KEY CHECK (seq >= 1),
    at          TIMESTAMPTZ NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    client_ip   TEXT,
    identifiers TEXT NOT NULL,
    serial      TEXT COLLATE "C",
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
-- `acme-ca audit list --since 24h`
CREATE INDEX audit_log_by_time ON audit_log (at);
-- Append-only in the database too: UPDATE, DELETE and TRUNCATE are refused, so
-- changing an entry takes DDL (dropping this trigger), never an accident. The chain
-- shows an edit; a head kept outside the database (the acme_ca.audit.head log line)
-- shows a re-hashed or cut log. Give the CA's role only INSERT and SELECT on audit_log
-- (docs/operations.md), and keep the table's owner another role.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Store.list_accounts: newest first.
CREATE INDEX accounts_by_created ON accounts (created_at, id);
-- Store.list_orders without an account: newest first.
CREATE INDEX orders_by_created ON orders (created_at, id);
-- Store.latest_revocations and count_revocations (the dashboard's recent revocations):
-- the revoked rows alone, the latest revoked first, with not_after to skip the expired
-- ones without reading the table. status leads although the index holds one value of
-- it: with "status = 'revoked'" matching a column, SQLite's planner picks this index
-- over certificates_by_status (status, created_at, serial), which would read and sort
-- every revoked row (review of issue 13 item 6).
CREATE INDEX certificates_revoked_latest ON certificates (status, revoked_at, serial, not_after)
    WHERE status = 'revoked';
-- Store.failed_validations: the invalid challenges of the last day.
CREATE INDEX challenges_invalid ON challenges (validated_at) WHERE status = 'invalid';
-- Store.failed_validations: the type of a challenge's problem document, NULL when its
-- error is not JSON (as SQLite's json_valid guards), instead of failing the whole read.
CREATE FUNCTION problem_type(error TEXT) RETURNS TEXT LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN error::jsonb ->> 'type';
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;
