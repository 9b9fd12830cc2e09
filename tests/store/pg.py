"""A PostgreSQL database of its own for each test, and stores on it.

The server is the one every development and CI machine runs (issue 10:
127.0.0.1:5432, user postgres, trust authentication), or the one
``ACME_CA_PG_DSN`` names (a URL to its maintenance database). Each test gets a
database with a random name, dropped afterwards (its connections terminated
first). Where no server answers, the tests are skipped with the reason, except in
CI (``CI=true``), where they fail: a missing PostgreSQL must not pass for green.

Import the fixtures into a conftest or a test module to use them:
``from tests.store.pg import pg_url, pg_store  # noqa: F401``. Nothing here imports
asyncpg before it is needed, so the SQLite half of the contract suite runs without it.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.relay import Relay
from tests.required import missing

if TYPE_CHECKING:
    import asyncpg

    from acme_ca.store.postgres import PostgresStore

ADMIN_DSN = os.environ.get("ACME_CA_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str, admin_dsn: str = ADMIN_DSN) -> str:
    """The admin URL with its database replaced by ``name``."""
    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def require_asyncpg() -> ModuleType:
    """asyncpg, imported now; skips (fails in CI) when the postgres extra is missing."""
    try:
        return importlib.import_module("asyncpg")
    except ImportError:
        missing("the postgres extra (asyncpg) is not installed: "
                    "pip install -e '.[postgres]'")


async def admin_connection(admin_dsn: str = ADMIN_DSN) -> asyncpg.Connection:
    """A connection to the maintenance database; skips the test (fails in CI) when
    no server answers."""
    driver = require_asyncpg()
    try:
        return await driver.connect(admin_dsn, timeout=5)
    except (OSError, TimeoutError, driver.PostgresError, driver.InterfaceError) as exc:
        missing(f"no PostgreSQL server at {urlsplit(admin_dsn).netloc}: {exc}")


async def drop_database(admin: asyncpg.Connection, name: str) -> None:
    """Terminate the database's connections, then drop it."""
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def fresh_database(admin_dsn: str = ADMIN_DSN) -> AsyncIterator[str]:
    """The URL of a new empty database, dropped on exit."""
    admin = await admin_connection(admin_dsn)
    name = f"acme_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(name, admin_dsn)
        finally:
            await drop_database(admin, name)
    finally:
        await admin.close()


async def terminate_connections(url: str) -> int:
    """``pg_terminate_backend`` every connection to the database of ``url`` but the
    one doing it; returns how many were terminated."""
    name = urlsplit(url).path.lstrip("/")
    admin = await admin_connection()
    try:
        return await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    finally:
        await admin.close()


async def lock_waited_for(conn: asyncpg.Connection, *, locktype: str | None = None,
                          relation: str | None = None) -> None:
    """Return once a session waits for a lock: of ``locktype`` ('advisory'), or on the
    table ``relation``. pg_locks is live, not MVCC: ``conn`` sees it change inside a
    transaction of its own too. Wrap it in tests.waiting.within."""
    while not await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted"
            " AND ($1::text IS NULL OR locktype = $1)"
            " AND ($2::text IS NULL OR relation = $2::text::regclass)", locktype, relation):
        await asyncio.sleep(0.01)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """The URL of an empty database of this test's own."""
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[PostgresStore]:
    """A migrated store on ``pg_url``, with a small pool."""
    from acme_ca.store.postgres import PostgresStore

    store = await PostgresStore.open(pg_url, pool_size=4)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def relay(pg_url: str) -> AsyncIterator[Relay]:
    """A relay in front of ``pg_url``'s server, that the test can cut (tests/relay.py)."""
    parts = urlsplit(pg_url)
    opened = await Relay(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    yield opened
    await opened.close()


def through(url: str, relay: Relay) -> str:
    """``url``, reaching its server through ``relay``."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}").geturl()
