"""The PostgreSQL runner of the versioned migrations (``store/migrations.py``).

Each migration runs in one transaction together with the row that records it (DDL is
transactional in PostgreSQL), so a crash leaves the database at the previous version.
The transaction first takes a transaction-level advisory lock with a fixed key, and
only then reads the version: replicas that start together on a fresh database queue
on that lock, and each migration is applied exactly once, by whichever got it first.
The lock goes with the transaction, so a replica killed while migrating holds nothing.
"""

from __future__ import annotations

from acme_ca.store.migrations import CREATE_MIGRATIONS_TABLE, check_known, load_migrations
from acme_ca.store.postgres.base import Connection

# The key of pg_advisory_xact_lock held while migrating: "acme-ca\0" as a bigint.
MIGRATION_LOCK = int.from_bytes(b"acme-ca\0", "big", signed=True)

_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)"


async def postgres_schema_version(conn: Connection) -> int:
    """The newest applied version; 0 for a database never migrated."""
    if not await conn.fetchval(_EXISTS):
        return 0
    return int(await conn.fetchval(_VERSION))


async def migrate_postgres(conn: Connection, applied_at: str) -> int:
    """Bring the database to the newest version; returns that version.

    Idempotent: an up-to-date database is only read (no lock is taken). A database
    newer than this code is refused (``migrations.check_known``). ``applied_at`` is
    the timestamp text recorded with each migration applied now.
    """
    migrations = load_migrations("postgres")
    latest = len(migrations)
    version = await postgres_schema_version(conn)
    check_known(version, latest)
    while version < latest:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(CREATE_MIGRATIONS_TABLE)
            version = await postgres_schema_version(conn)  # another replica may have won
            check_known(version, latest)
            if version < latest:
                migration = migrations[version]  # versions are 1..N: this is version + 1
                await conn.execute(migration.sql)
                await conn.execute(_RECORD, migration.version, migration.name, applied_at)
                version = migration.version
    return version
