"""The PostgreSQL runner of the versioned migrations (``store/migrations.py``).

Each migration runs in one transaction together with the row that records it (DDL is
transactional in PostgreSQL), so a crash leaves the database at the previous version.
The transaction first takes a transaction-level advisory lock with a fixed key, and
only then reads the version: replicas that start together on a fresh database queue
on that lock, and each migration is applied exactly once, by whichever got it first.
The lock goes with the transaction, so a replica killed while migrating holds nothing.

How long each waits (``lock_timeout``, set for the transaction alone):

- for another replica's migration (the advisory lock): up to ``WAIT_FOR_ANOTHER``,
  far beyond a statement's timeout, since a migration may take a while;
- for the locks of the tables a migration changes: ``DDL_LOCK_TIMEOUT`` only. An
  ``ALTER TABLE`` waiting for its lock (behind a long transaction, a ``pg_dump``)
  makes every later statement on that table queue behind it, on every replica: a
  short wait stalls them briefly, then the start fails in one line, with nothing
  changed, to be tried again.

Either failure is ``StoreUnavailable``: retry later.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from acme_ca.errors import StoreUnavailable
from acme_ca.store.migrations import (
    CREATE_MIGRATIONS_TABLE,
    Migration,
    check_known,
    load_migrations,
)
from acme_ca.store.postgres.base import Connection
from acme_ca.store.postgres.pool import milliseconds

# The key of pg_advisory_xact_lock held while migrating: "acme-ca\0" as a bigint.
MIGRATION_LOCK = int.from_bytes(b"acme-ca\0", "big", signed=True)
WAIT_FOR_ANOTHER = 60.0  # seconds
DDL_LOCK_TIMEOUT = 2.0  # seconds

_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)"
_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, true)"  # SET LOCAL, with a parameter


async def postgres_schema_version(conn: Connection) -> int:
    """The newest applied version; 0 for a database never migrated."""
    if not await conn.fetchval(_EXISTS):
        return 0
    return int(await conn.fetchval(_VERSION))


async def migrate_postgres(conn: Connection, applied_at: str, *,
                           wait_for_another: float = WAIT_FOR_ANOTHER,
                           applied: Callable[[Migration], None] = lambda _: None) -> int:
    """Bring the database to the newest version; returns that version.

    Idempotent: an up-to-date database is only read (no lock is taken). A database
    newer than this code is refused (``migrations.check_known``). ``applied_at`` is
    the timestamp text recorded with each migration applied now; ``applied`` is called
    with each one once it is committed (`acme-ca db migrate`'s progress).
    ``StoreUnavailable`` after the waits of the module docstring.
    """
    migrations = load_migrations("postgres")
    latest = len(migrations)
    version = await postgres_schema_version(conn)
    check_known(version, latest)
    while version < latest:
        done: Migration | None = None
        async with conn.transaction():
            await conn.execute(_LOCK_TIMEOUT, milliseconds(wait_for_another))
            try:  # the client waits longer than the server, so that the server says why
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK,
                                   timeout=2 * wait_for_another)
            except asyncpg.LockNotAvailableError:
                raise StoreUnavailable(
                    f"another replica has been migrating the database for more than "
                    f"{wait_for_another:g} s; try again later") from None
            await conn.execute(_LOCK_TIMEOUT, milliseconds(DDL_LOCK_TIMEOUT))
            await conn.execute(CREATE_MIGRATIONS_TABLE)
            version = await postgres_schema_version(conn)  # another replica may have won
            check_known(version, latest)
            if version < latest:
                migration = done = migrations[version]  # versions are 1..N: version + 1
                try:
                    await conn.execute(migration.sql)
                except asyncpg.LockNotAvailableError:
                    raise StoreUnavailable(
                        f"migration {migration.version} ({migration.name}) of the database waited "
                        f"{DDL_LOCK_TIMEOUT:g} s for a lock on its tables, which another "
                        "session holds (a long transaction, a pg_dump?); nothing was "
                        "changed; try again") from None
                await conn.execute(_RECORD, migration.version, migration.name, applied_at)
                version = migration.version
        if done is not None:
            applied(done)
    return version
