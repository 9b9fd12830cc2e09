-- 0005: what replicas need to share the work.
--
-- challenges.processing_since: when the validation in flight started, so the holder
-- of the background lease resumes only those whose process stopped
-- (Store.processing_challenges); NULL (a row from before this version) counts as
-- processing forever, and sorts first. The partial index holds only processing rows.
ALTER TABLE challenges ADD COLUMN processing_since TIMESTAMPTZ;
DROP INDEX challenges_processing;
CREATE INDEX challenges_processing
    ON challenges (processing_since NULLS FIRST, id) WHERE status = 'processing';

-- Named leases (Store.hold_lease): at most one holder until expires, which is on the
-- database server's clock, so replicas whose clocks drift still agree.
CREATE TABLE leases (
    name    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    holder  TEXT NOT NULL,
    expires TIMESTAMPTZ NOT NULL
);
