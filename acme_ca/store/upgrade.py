"""Migrating a database on purpose (`acme-ca db migrate`), rather than as a side effect
of opening it (``open_store``, which `serve` calls, migrates too).

``migrate_database`` reads the version the database is at, says how many migrations
are pending (``started``), applies them one by one with the backends' runners
(``sqlite/migrate.py``, ``postgres/migrate.py``: one transaction each, under their
locks, so a server opening the same database meanwhile applies none twice), and says
each one it applied (``applied``). A SQLite file that does not exist is refused, not
created: a mistyped url would otherwise leave an empty database behind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from acme_ca.clock import SystemClock
from acme_ca.errors import ConfigError, StoreError
from acme_ca.store import is_postgres, sqlite_file
from acme_ca.store.migrations import Migration, check_known, load_migrations
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.migrate import migrate_sqlite, sqlite_schema_version
from acme_ca.store.sqlite.opening import BUSY_TIMEOUT_MS


@dataclass(frozen=True, slots=True)
class Migrated:
    before: int  # the version the database was at
    after: int  # the version it is at now (this code's newest)


Started = Callable[[int, int], None]  # (the version found, the newest)
Applied = Callable[[Migration], None]


async def migrate_database(url: str, *, started: Started = lambda _v, _n: None,
                           applied: Applied = lambda _: None) -> Migrated:
    """Bring the database ``url`` names to this code's newest schema version.
    ``StoreError`` for a database newer than this code (``migrations.check_known``);
    ``ConfigError`` for an in-memory or missing SQLite database."""
    applied_at = SystemClock().now().isoformat()
    if is_postgres(url):
        return await _postgres(url, applied_at, started, applied)
    path = sqlite_file(url)
    if path is None:
        raise ConfigError("storage.url names no database file (an in-memory database is "
                          "gone with its process): there is nothing to migrate")
    if not path.is_file():
        raise ConfigError(f"no database at {path} ([storage] url); is --data-dir/--config "
                          "right? (`acme-ca serve` creates it)")
    return await _sqlite(str(path), applied_at, started, applied)


async def _sqlite(path: str, applied_at: str, started: Started, applied: Applied
                  ) -> Migrated:
    conn = await Connection.connect(path, durable=True)
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        await conn.execute("PRAGMA synchronous = FULL")  # as the store's writer
        await conn.execute("PRAGMA foreign_keys = ON")
        before = await sqlite_schema_version(conn)
        latest = len(load_migrations("sqlite"))
        check_known(before, latest)
        started(before, latest)
        after = await migrate_sqlite(conn, applied_at, applied=applied)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {exc}") from exc
    finally:
        await conn.close()
    return Migrated(before, after)


async def _postgres(url: str, applied_at: str, started: Started, applied: Applied
                    ) -> Migrated:
    """Imported only now: asyncpg is an optional extra (``open_store``)."""
    try:
        from acme_ca.store.postgres.migrate import migrate_postgres, postgres_schema_version
        from acme_ca.store.postgres.pool import TIMEOUT, open_pool, store_error
        from acme_ca.store.postgres.url import describe
    except ImportError as exc:
        raise ConfigError(f"storage.url: PostgreSQL needs asyncpg ({exc.name} is missing); "
                          "install acme-ca[postgres]") from None

    pool = await open_pool(url, size=1, timeout=TIMEOUT)
    try:
        async with pool.acquire(timeout=TIMEOUT) as conn:
            before = await postgres_schema_version(conn)
            latest = len(load_migrations("postgres"))
            check_known(before, latest)
            started(before, latest)
            after = await migrate_postgres(conn, applied_at, applied=applied)
    except Exception as exc:
        mapped = store_error(exc, describe(url))
        if mapped is exc:
            raise
        raise mapped from exc
    finally:
        await pool.close()
    return Migrated(before, after)
