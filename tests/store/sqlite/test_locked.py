"""SQLite's lock held by another process past the busy timeout ("database is locked",
SQLITE_BUSY) is a transient unavailability, as a database restart is on PostgreSQL:
``StoreUnavailable`` (which the API answers 503 with Retry-After), never a plain
``StoreError`` (a 500 with a traceback). Real locks: a second sqlite3 connection in
``BEGIN IMMEDIATE`` on the main file or on the nonce file; the busy timeout is cut to
a fraction of a second so that the test does not wait 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.errors import StoreUnavailable
from acme_ca.store import SqliteStore
from acme_ca.store.sqlite import base
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.opening import nonce_path
from tests.store.conftest import T0, make_account

LATER = T0 + timedelta(minutes=30)


@pytest.fixture
async def impatient(db_file: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> AsyncIterator[SqliteStore]:
    """A store that waits 0.2 s for another process's lock, not 5 s."""
    monkeypatch.setattr(base, "BUSY_TIMEOUT_MS", 200)
    store = await SqliteStore.open(db_file)
    try:
        yield store
    finally:
        await store.close()


@contextlib.contextmanager
def locked(path: Path | str) -> Iterator[None]:
    """Another process holds the write lock of the file at ``path`` meanwhile."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_write_lock_held_past_the_busy_timeout_is_unavailable(
    impatient: SqliteStore, db_file: Path
):
    await impatient.create_account(make_account("before", thumbprint="t-before"))
    with locked(db_file):
        with pytest.raises(StoreUnavailable, match="locked"):
            await impatient.create_account(make_account("during", thumbprint="t-during"))
        assert (await impatient.get_account("before")).id == "before"  # reads go on
    created = await impatient.create_account(make_account("after", thumbprint="t-after"))
    assert created.id == "after"


async def test_a_nonce_lock_held_past_the_busy_timeout_is_unavailable(
    impatient: SqliteStore, db_file: Path
):
    await impatient.add_nonce("kept", LATER)
    with locked(nonce_path(str(db_file))):
        with pytest.raises(StoreUnavailable, match="locked"):
            await impatient.add_nonces(["during"], LATER)
        with pytest.raises(StoreUnavailable, match="locked"):
            await impatient.consume_nonce("kept", T0)
    assert await impatient.consume_nonce("kept", T0) is True


async def test_a_call_meeting_a_lock_after_close_began_stops_at_its_next_try(db_file: Path):
    """``Connection.without_sleeping``: ``close`` waits for the calls already trying
    again, but a call whose first try meets the lock after ``close`` began (its thread
    still busy closing) must not poll on a connection being closed: its next try
    raises sqlite3's own "closed" error, at once, not after the timeout."""
    conn = await Connection.connect(str(db_file), durable=False)
    await conn.execute("PRAGMA busy_timeout = 0")
    gate = threading.Event()
    conn._thread.submit(gate.wait)  # the connection's thread busy: close waits behind it
    try:
        with locked(db_file):
            closing = asyncio.ensure_future(conn.close())
            await asyncio.sleep(0)  # close has begun: it waits for the thread
            assert not closing.done()
            with pytest.raises(sqlite3.ProgrammingError, match="closed"):
                await asyncio.wait_for(
                    conn.without_sleeping(lambda raw: raw.execute("BEGIN IMMEDIATE"),
                                          timeout=30), 5)
            assert conn._retrying == 0
    finally:
        gate.set()
    await closing
