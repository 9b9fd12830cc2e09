"""Retention in SQLite (``RetentionStore``): pruning what expired long ago, a bounded
batch per transaction, and the size of each table.

Each prune is one transaction: it reads a batch of ids through an index of 0008
(``orders_by_expiry``, ``authorizations_by_expiry``; ``rate_limits_by_tat`` of 0007),
then deletes what hangs off them before the rows themselves (an order's list of
authorizations, an authorization's challenges). Writers run one at a time (``base``),
so what a prune reads is what it deletes, and of two stores pruning at once the second
finds the rows the first left: every row is deleted once, and neither fails.
Certificates are never deleted; ``certificates.order_id`` keeps the id of an order
that is gone (it has no foreign key).

``table_stats`` counts every table of the main file and of the nonce file; bytes come
from the ``dbstat`` virtual table (the pages of a table and of its indexes) when this
SQLite was compiled with it, and are None otherwise. ``read_only_table_stats`` counts
the same without a store (``acme-ca db stats``): it opens the files read-only
(``mode=ro``), a nonce file only if there is one, and migrates nothing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import datetime
from pathlib import Path

from acme_ca.errors import StoreError
from acme_ca.store import guards
from acme_ca.store.migrations import check_current
from acme_ca.store.retention import TableStats
from acme_ca.store.sqlite.base import SqliteBase, to_text
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.migrate import raw_schema_version
from acme_ca.store.sqlite.opening import nonce_path

# The oldest orders expired before ?1, of any status but processing (being signed:
# finish_order must find it; ``sweeper.py`` ends it, and a later round prunes it).
PRUNABLE_ORDERS = """
SELECT id FROM orders INDEXED BY orders_by_expiry
WHERE expires < ? AND status != 'processing' ORDER BY expires, id LIMIT ?"""
# The oldest authorizations expired before ?1 that no order lists and that no validation
# is settling (record_validation moves only a processing challenge: what it would move
# is left alone; an expired authorization's challenge never starts processing again).
PRUNABLE_AUTHORIZATIONS = """
SELECT id FROM authorizations AS a INDEXED BY authorizations_by_expiry
WHERE expires < ?
  AND NOT EXISTS (SELECT 1 FROM order_authorizations WHERE authorization_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM challenges
                  WHERE authorization_id = a.id AND status = 'processing')
ORDER BY expires, id LIMIT ?"""
# The ids of a batch, as a JSON array (json_each): one statement per table.
DELETE_LINKS = """
DELETE FROM order_authorizations WHERE order_id IN (SELECT value FROM json_each(?))"""
DELETE_ORDERS = "DELETE FROM orders WHERE id IN (SELECT value FROM json_each(?))"
DELETE_CHALLENGES = """
DELETE FROM challenges WHERE authorization_id IN (SELECT value FROM json_each(?))"""
DELETE_AUTHORIZATIONS = """
DELETE FROM authorizations WHERE id IN (SELECT value FROM json_each(?))"""
# Full buckets (their TAT has passed): the same as no row.
PRUNE_LIMITS = """
DELETE FROM rate_limits WHERE (name, key) IN (
    SELECT name, key FROM rate_limits INDEXED BY rate_limits_by_tat WHERE tat <= ? LIMIT ?)"""

_TABLES = """
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
ORDER BY name"""
# Every page of a table and of its indexes, by table.
_SIZES = """
SELECT m.tbl_name AS name, SUM(s.pgsize) AS bytes
FROM dbstat AS s JOIN sqlite_master AS m ON m.name = s.name GROUP BY m.tbl_name"""


class RetentionMethods(SqliteBase):
    async def prune_orders(self, expired_before: datetime, *, limit: int) -> int:
        guards.check_limit(limit)
        return await self._prune(PRUNABLE_ORDERS, (to_text(expired_before), limit),
                                 DELETE_LINKS, DELETE_ORDERS)

    async def prune_authorizations(self, expired_before: datetime, *, limit: int) -> int:
        guards.check_limit(limit)
        return await self._prune(PRUNABLE_AUTHORIZATIONS, (to_text(expired_before), limit),
                                 DELETE_CHALLENGES, DELETE_AUTHORIZATIONS)

    async def prune_limits(self, now: datetime, *, limit: int) -> int:
        guards.check_limit(limit)
        values = (to_text(now), limit)

        async def prune(conn: Connection) -> int:
            async with conn.execute(PRUNE_LIMITS, values) as cursor:
                return cursor.rowcount

        return await self._transaction(prune)

    async def table_stats(self) -> list[TableStats]:
        found = await self._unslept(self._reader, _stats)
        found += await self._unslept(self._nonce_conn, _stats)
        return sorted(found, key=lambda table: table.name)

    async def _prune(self, select: str, values: tuple[object, ...], *deletes: str) -> int:
        """The ids ``select`` finds, then each of ``deletes`` on them, in one
        transaction; how many ids."""

        async def prune(conn: Connection) -> int:
            ids = [row[0] for row in await conn.execute_fetchall(select, values)]
            if ids:
                batch = (json.dumps(ids),)
                for sql in deletes:
                    await conn.execute(sql, batch)
            return len(ids)

        return await self._transaction(prune)


def read_only_table_stats(path: Path) -> list[TableStats]:
    """``table_stats`` of the database file ``path`` and its nonce file if there is one,
    both opened read-only; ``StoreError`` unless ``path`` is an acme-ca database at the
    schema version this code ships (``migrations.check_current``)."""
    found: list[TableStats] = []
    nonces = Path(nonce_path(str(path)))
    for each in [path, *([nonces] if nonces.is_file() else [])]:
        try:
            with contextlib.closing(sqlite3.connect(f"{each.resolve().as_uri()}?mode=ro",
                                                    uri=True)) as raw:
                if each == path:
                    check_current(raw_schema_version(raw), "sqlite", str(path))
                found += _stats(raw)
        except sqlite3.Error as exc:
            raise StoreError(f"{each}: {exc}") from None
    return sorted(found, key=lambda table: table.name)


def _stats(raw: sqlite3.Connection) -> list[TableStats]:
    """Every table of the file ``raw`` reads: rows, and bytes when ``dbstat`` exists."""
    names = [row[0] for row in raw.execute(_TABLES)]
    try:
        sizes: dict[str, int] | None = dict(raw.execute(_SIZES).fetchall())
    except sqlite3.OperationalError:  # no such table: dbstat (not compiled in)
        sizes = None
    return [
        TableStats(name, raw.execute(f"SELECT COUNT(*) FROM {_quoted(name)}").fetchone()[0],  # noqa: S608
                   None if sizes is None else sizes.get(name, 0))
        for name in names
    ]



def _quoted(name: str) -> str:
    """``name`` as an SQL identifier: in double quotes, each of its own doubled."""
    return '"' + name.replace('"', '""') + '"'
