"""SQLite's own fixtures: stores on a file of the test's tmp_path (or in memory), and a
way to see a connection wait for another process's lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acme_ca.clock import FakeClock
from acme_ca.store import SqliteStore
from acme_ca.store.sqlite.connection import Connection
from tests.store.conftest import T0, with_accounts
from tests.waiting import until


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "acme.db"


@pytest.fixture
async def acme_store(db_file: Path) -> AsyncIterator[SqliteStore]:
    """A store on a file, with the accounts ACCOUNT and OTHER."""
    opened = await SqliteStore.open(db_file, clock=FakeClock(T0))
    try:
        yield await with_accounts(opened)
    finally:
        await opened.close()


@pytest.fixture
async def memory_store() -> AsyncIterator[SqliteStore]:
    """A private in-memory store, with the accounts ACCOUNT and OTHER."""
    opened = await SqliteStore.open(":memory:")
    try:
        yield await with_accounts(opened)
    finally:
        await opened.close()


async def waits_for_lock(conn: Connection) -> None:
    """Returns once a call on `conn` met another process's lock and waits for it, trying
    again on the event loop (Connection.without_sleeping)."""
    await until(lambda: conn._retrying > 0, "a call to wait for the lock")
