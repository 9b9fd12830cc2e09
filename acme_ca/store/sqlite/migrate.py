"""The SQLite runner of the versioned migrations (``store/migrations.py``).

Each migration runs in one ``BEGIN IMMEDIATE`` transaction together with the row that
records it, so two processes opening the same fresh database at once apply each
migration exactly once, and a crash leaves the database at the previous version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from acme_ca.errors import StoreError
from acme_ca.store.migrations import (
    CREATE_MIGRATIONS_TABLE,
    Migration,
    check_known,
    load_migrations,
)
from acme_ca.store.sqlite.connection import Connection


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


_HAS_MIGRATIONS = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"


async def sqlite_schema_version(conn: Connection) -> int:
    """The newest applied version; 0 for a database never migrated."""
    if not list(await conn.execute_fetchall(_HAS_MIGRATIONS)):
        return 0
    rows = await conn.execute_fetchall(_VERSION)
    return int(next(iter(rows))[0])


def raw_schema_version(raw: sqlite3.Connection) -> int:
    """``sqlite_schema_version`` on a plain ``sqlite3`` connection (a read-only one)."""
    if raw.execute(_HAS_MIGRATIONS).fetchone() is None:
        return 0
    return int(raw.execute(_VERSION).fetchone()[0])


async def migrate_sqlite(conn: Connection, applied_at: str, *,
                         applied: Callable[[Migration], None] = lambda _: None) -> int:
    """Bring the database to the newest version; returns that version.

    Idempotent: an up-to-date database is only read. ``applied_at`` is the
    timestamp text recorded with each migration applied now; ``applied`` is called
    with each one once it is committed (`acme-ca db migrate`'s progress).
    """
    migrations = load_migrations("sqlite")
    latest = len(migrations)
    version = await sqlite_schema_version(conn)
    check_known(version, latest)
    while version < latest:
        done: Migration | None = None
        async with sqlite_immediate(conn):
            await conn.execute(CREATE_MIGRATIONS_TABLE)
            version = await sqlite_schema_version(conn)  # another process may have won
            check_known(version, latest)
            if version < latest:
                done = migrations[version]  # versions are 1..N: this is version + 1
                for statement in sqlite_statements(done.sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (done.version, done.name, applied_at),
                )
                version = done.version
        if done is not None:
            applied(done)
    return version
