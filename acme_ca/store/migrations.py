"""Versioned schema migrations: numbered SQL files, each applied once, in order.

The files live in ``acme_ca/store/schema/<dialect>/NNNN_<name>.sql`` (``sqlite``
now, ``postgres`` beside it later) and are read with ``importlib.resources``, so
they work from an installed wheel as well as from a checkout. Version N is the
file numbered N; the numbers run 1, 2, 3 ... without gaps. A migration is never
edited once released: a change to the schema is a new file.

Each migration runs in one transaction together with the row that records it in
``schema_migrations``, so a crash leaves the database at the previous version,
never in between. The SQLite runner takes the write lock (``BEGIN IMMEDIATE``)
and only then re-reads the version, so two processes opening the same fresh
database at once apply each migration exactly once. A database whose version is
newer than the files this code ships with is refused.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import cache
from importlib import resources

from acme_ca.errors import StoreError
from acme_ca.store.sqlite_connection import Connection

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def load_migrations(dialect: str) -> tuple[Migration, ...]:
    """The migrations shipped for ``dialect`` ("sqlite"), ordered by version."""
    folder = resources.files("acme_ca.store") / "schema" / dialect
    if not folder.is_dir():
        raise StoreError(f"no schema migrations are shipped for {dialect!r}")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        sql = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match.group(1)), match.group(2), sql))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"schema/{dialect}: migrations must be numbered 1..N, found {versions}")
    return tuple(found)


def check_known(found: int, known: int) -> None:
    """Refuse a database migrated by a newer acme-ca than this one."""
    if found > known:
        raise StoreError(
            f"the database schema is at version {found}, but this acme-ca knows only "
            f"versions up to {known}; run a newer acme-ca or restore a matching backup"
        )


def sqlite_statements(sql: str) -> list[str]:
    """Split a migration file into single statements (comments stay attached)."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = [line for line in pending.splitlines() if line.strip()]
    if any(not line.lstrip().startswith("--") for line in leftover):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {pending.strip()!r}")
    return statements


@asynccontextmanager
async def sqlite_immediate(conn: Connection) -> AsyncIterator[Connection]:
    """One write transaction: BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any error.

    IMMEDIATE takes the database's write lock at the start (waiting up to the
    connection's busy_timeout), so what the transaction reads cannot be changed
    by another writer before it commits. The connection must have been opened
    with ``isolation_level=None`` so that sqlite3 starts no transactions itself.
    """
    try:
        await conn.execute("BEGIN IMMEDIATE")
        yield conn
        await conn.execute("COMMIT")
    except BaseException:
        # Queued behind whatever statement was running, so it also undoes a
        # transaction whose BEGIN or COMMIT was interrupted by cancellation.
        with suppress(sqlite3.OperationalError):  # "no transaction is active"
            await conn.execute("ROLLBACK")
        raise


async def sqlite_schema_version(conn: Connection) -> int:
    """The newest applied version; 0 for a database never migrated."""
    rows = await conn.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    )
    if not list(rows):
        return 0
    rows = await conn.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    return int(next(iter(rows))[0])


async def migrate_sqlite(conn: Connection, applied_at: str) -> int:
    """Bring the database to the newest version; returns that version.

    Idempotent: an up-to-date database is only read. ``applied_at`` is the
    timestamp text recorded with each migration applied now.
    """
    migrations = load_migrations("sqlite")
    latest = len(migrations)
    version = await sqlite_schema_version(conn)
    check_known(version, latest)
    while version < latest:
        async with sqlite_immediate(conn):
            await conn.execute(_CREATE_MIGRATIONS_TABLE)
            version = await sqlite_schema_version(conn)  # another process may have won
            check_known(version, latest)
            if version < latest:
                migration = migrations[version]  # versions are 1..N: this is version + 1
                for statement in sqlite_statements(migration.sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, applied_at),
                )
                version = migration.version
    return version
