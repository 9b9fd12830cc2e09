-- 0004: the orders a sweeper looks for (acme_ca/authority/sweeper.py): those left
-- processing by a finalize that never ended (a killed process, a failed write). A
-- partial index holds only those few rows, so a sweep every few seconds reads no more.
CREATE INDEX orders_processing ON orders (created_at, id) WHERE status = 'processing';
