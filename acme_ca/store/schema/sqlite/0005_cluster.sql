-- 0005: what the processes sharing this database need to share besides the data
-- (issue 10; PostgreSQL's 0005 has the same meaning).
--
-- When a challenge started processing (Store.update_challenge(processing_since=)), so
-- that the holder of the background lease resumes only validations whose process
-- stopped (Store.processing_challenges(started_before)). Same fixed-width ISO 8601
-- UTC text as every datetime here; NULL for a challenge set processing before this
-- migration: it counts as processing since ever. The partial index holds only the
-- processing challenges, by that time, a NULL one as '' (before every time), so that
-- "processing since this time or earlier" is one range of it; it replaces 0002's.
ALTER TABLE challenges ADD COLUMN processing_since TEXT;
DROP INDEX challenges_processing;
CREATE INDEX challenges_processing ON challenges (COALESCE(processing_since, ''))
    WHERE status = 'processing';

-- Named leases (Store.hold_lease): at most one holder of each until it expires, so
-- that background work runs in one process of `serve --workers N` at a time.
CREATE TABLE leases (
    name    TEXT NOT NULL PRIMARY KEY,
    holder  TEXT NOT NULL,
    expires TEXT NOT NULL  -- fixed-width ISO 8601 UTC text, as everywhere
);
