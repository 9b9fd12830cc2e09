"""The PostgreSQL schema: versioned migrations applied once under a lock, a newer
database refused, nonces in an UNLOGGED table (issue 10)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import asyncpg
import pytest

from acme_ca.errors import StoreError, StoreUnavailable
from acme_ca.store.migrations import CREATE_MIGRATIONS_TABLE, load_migrations
from acme_ca.store.postgres import PostgresStore
from acme_ca.store.postgres.migrate import DDL_LOCK_TIMEOUT, MIGRATION_LOCK, migrate_postgres
from tests.store.conftest import ACCOUNT, DER, T0, assert_0009_kept_and_works
from tests.store.pg import lock_waited_for
from tests.waiting import within

NAMES = ["certificates", "acme", "nonces_apart", "orders_processing", "cluster", "expiry",
         "who_gets_what", "retention", "revocation", "operations"]


def test_the_versions_are_sqlites_with_the_same_names():
    """Same numbers, same meaning on both dialects (migrations.py)."""
    postgres = [(m.version, m.name) for m in load_migrations("postgres")]
    sqlite = [(m.version, m.name) for m in load_migrations("sqlite")]
    assert postgres == list(enumerate(NAMES, start=1))
    assert postgres[:len(sqlite)] == sqlite


_INDEX = re.compile(r"CREATE\s+(UNIQUE\s+)?INDEX\s+(\w+)\s+ON\s+(\w+)\s*\(([^;]*?)\)"
                    r"\s*(WHERE[^;]*)?;", re.IGNORECASE)


def indexes(dialect: str, since: int) -> dict[str, tuple[str, ...]]:
    """The indexes the migrations from ``since`` on create: name -> unique, table,
    columns, predicate (blanks squeezed, comments dropped)."""
    found = {}
    for migration in load_migrations(dialect)[since - 1:]:
        sql = re.sub(r"--[^\n]*", "", migration.sql)
        for unique, name, table, columns, where in _INDEX.findall(sql):
            found[name] = tuple(" ".join(part.split()) for part in (unique, table, columns,
                                                                     where))
    return found


def test_the_retention_indexes_are_the_same_on_both_dialects():
    """0008 on: the same columns in the same order on SQLite and PostgreSQL, as the
    queries they serve are the same (the prunes sort by expires, id)."""
    sqlite = indexes("sqlite", since=8)
    assert {"orders_by_expiry", "authorizations_by_expiry", "authorizations_pending"} \
        <= set(sqlite)
    assert sqlite == indexes("postgres", since=8)
    assert sqlite["orders_by_expiry"][2] == "expires, id"


async def applied(url: str) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    return [(row["version"], row["name"]) for row in rows]


async def test_a_fresh_database_is_migrated_to_the_newest_version(pg_url: str):
    store = await PostgresStore.open(pg_url)
    try:
        assert await store.schema_version() == len(NAMES)
    finally:
        await store.close()
    assert await applied(pg_url) == list(enumerate(NAMES, start=1))


async def test_replicas_opening_a_fresh_database_at_once_migrate_it_once(pg_url: str):
    """Each migration transaction takes pg_advisory_xact_lock before reading the version."""
    stores = await asyncio.gather(*(PostgresStore.open(pg_url, pool_size=1) for _ in range(6)))
    try:
        versions = await asyncio.gather(*(store.schema_version() for store in stores))
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert versions == [len(NAMES)] * 6
    assert await applied(pg_url) == list(enumerate(NAMES, start=1))


async def test_reopening_applies_nothing_and_keeps_the_nonces(pg_store: PostgresStore,
                                                               pg_url: str):
    """A replica's restart voids nobody's nonces (RFC 8555 6.5, issue 10)."""
    await pg_store.add_nonce("kept", T0 + timedelta(hours=1))
    await pg_store.close()
    again = await PostgresStore.open(pg_url)
    try:
        assert await again.schema_version() == len(NAMES)
        assert await again.consume_nonce("kept", T0)
    finally:
        await again.close()
    assert len(await applied(pg_url)) == len(NAMES)


async def test_a_database_newer_than_the_code_is_refused_in_one_line(pg_url: str):
    """A replica older than the schema refuses to start (issue 10)."""
    await (await PostgresStore.open(pg_url)).close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                           "VALUES (99, 'from_the_future', 'now')")
    finally:
        await conn.close()
    with pytest.raises(StoreError) as caught:
        await PostgresStore.open(pg_url)
    message = str(caught.value)
    assert "version 99" in message and "\n" not in message


async def test_nonces_are_unlogged_and_the_data_is_not(pg_store: PostgresStore, pg_url: str):
    """UNLOGGED: crash recovery empties the table, so no consumed nonce comes back
    after a crash (cluster.py); everything else is written to the WAL."""
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch(
            "SELECT relname, relpersistence::text FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
    finally:
        await conn.close()
    persistence = {row["relname"]: row["relpersistence"] for row in rows}
    assert persistence.pop("nonces") == "u"
    assert set(persistence) >= {"certificates", "accounts", "orders", "authorizations",
                                "challenges", "order_authorizations", "leases"}
    assert set(persistence.values()) == {"p"}


async def test_a_replica_waits_for_another_replicas_migration_beyond_the_timeout(pg_url: str):
    """Replicas started together: the one that did not get the migration lock waits for
    the other to finish (up to WAIT_FOR_ANOTHER), longer than a statement may take."""
    migrating = await asyncpg.connect(pg_url)
    try:
        async with migrating.transaction():
            await migrating.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            opening = asyncio.create_task(PostgresStore.open(pg_url, timeout=0.5))
            await asyncio.sleep(2.0)  # four statement timeouts
            assert not opening.done()
        store = await opening
    finally:
        await migrating.close()
    try:
        assert await store.schema_version() == len(NAMES)
    finally:
        await store.close()


async def test_waiting_for_another_replicas_migration_ends_after_a_while(pg_url: str):
    migrating, waiting = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    try:
        async with migrating.transaction():
            await migrating.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            with pytest.raises(StoreUnavailable, match="another replica has been migrating"):
                await migrate_postgres(waiting, "now", wait_for_another=0.3)
    finally:
        await migrating.close()
        await waiting.close()


async def test_a_migration_behind_a_long_lock_fails_soon_and_stalls_nobody_long(pg_url: str):
    """A database at version 4 in use; a long transaction has read challenges (a
    pg_dump, a report), and a new replica's migration 5 must ALTER that table. Its
    ALTER waits DDL_LOCK_TIMEOUT, not the statement timeout: the serving replicas'
    statements on challenges, queued behind it, wait no longer than that; the start
    fails in one line with nothing changed, and succeeds once the lock is gone."""
    setup = await asyncpg.connect(pg_url)
    await setup.execute(CREATE_MIGRATIONS_TABLE)
    for migration in load_migrations("postgres")[:4]:
        await setup.execute(migration.sql)
        await setup.execute("INSERT INTO schema_migrations VALUES ($1, $2, 'then')",
                            migration.version, migration.name)
    await setup.close()
    holder, serving = await asyncpg.connect(pg_url), await asyncpg.connect(pg_url)
    loop = asyncio.get_running_loop()
    try:
        async with holder.transaction():
            await holder.execute("SELECT count(*) FROM challenges")
            opening = asyncio.create_task(PostgresStore.open(pg_url))
            await within(lock_waited_for(serving, relation="challenges"),
                         "migration 5's ALTER to wait for its lock")
            started = loop.time()
            await serving.fetch("SELECT * FROM challenges WHERE id = 'x'")
            assert loop.time() - started < DDL_LOCK_TIMEOUT + 1.0
            with pytest.raises(StoreUnavailable, match=r"migration 5 \(cluster\).*lock") as caught:
                await opening
            assert "\n" not in str(caught.value)
            assert loop.time() - started < DDL_LOCK_TIMEOUT + 1.0
        assert await applied(pg_url) == list(enumerate(NAMES[:4], start=1))
    finally:
        await holder.close()
        await serving.close()
    store = await PostgresStore.open(pg_url)
    await store.close()
    assert await applied(pg_url) == list(enumerate(NAMES, start=1))


async def test_a_version_8_database_holding_rows_gains_0009_and_keeps_them(pg_url: str):
    """0009 (issue 12: ARI, RFC 9773; CRLs, RFC 5280 5) on a database in use: its
    certificates and orders read as before, unmarked and replacing nothing, and the
    new columns, index and table work at once."""
    setup = await asyncpg.connect(pg_url)
    try:
        await setup.execute(CREATE_MIGRATIONS_TABLE)
        for migration in load_migrations("postgres")[:8]:
            await setup.execute(migration.sql)
            await setup.execute("INSERT INTO schema_migrations VALUES ($1, $2, 'then')",
                                migration.version, migration.name)
        await setup.execute("INSERT INTO accounts (id, status, jwk, thumbprint, terms_agreed, "
                            "created_at) VALUES ($1, 'valid', '{}', 't', true, $2)",
                            ACCOUNT, T0)
        for serial, revoked in (("0a", False), ("0b", True)):
            await setup.execute(
                "INSERT INTO certificates (serial, issuer, names, profile, not_before, "
                "not_after, created_at, status, der, account_id, order_id, revoked_at, "
                "revocation_reason) VALUES ($1, $2, '{old.example.test}', 'server', $3, $4, "
                "$3, $5, $6, $7, 'order-old', $8, $9)",
                serial, "ab" * 32, T0, T0 + timedelta(days=90),
                "revoked" if revoked else "issued", DER, ACCOUNT,
                T0 if revoked else None, 1 if revoked else None)
        await setup.execute(
            "INSERT INTO orders (id, account_id, status, identifiers, expires, created_at, "
            "certificate_serial) VALUES ('order-old', $1, 'valid', "
            "'[{\"type\": \"dns\", \"value\": \"old.example.test\"}]', $2, $2, '0a')",
            ACCOUNT, T0)
    finally:
        await setup.close()
    store = await PostgresStore.open(pg_url)
    try:
        assert await store.schema_version() == len(NAMES)
        await assert_0009_kept_and_works(store)
    finally:
        await store.close()
    assert await applied(pg_url) == list(enumerate(NAMES, start=1))
