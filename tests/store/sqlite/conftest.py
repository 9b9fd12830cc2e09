"""SQLite's own fixtures: stores on a file of the test's tmp_path (or in memory), and
ways to see a connection's thread wait for another process's lock."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from acme_ca.clock import FakeClock
from acme_ca.store import SqliteStore
from acme_ca.store.sqlite.connection import Connection
from tests.store.conftest import T0, with_accounts


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


def waits_in_thread(conn: Connection, also: Callable[[str], None] | None = None
                    ) -> asyncio.Event:
    """An event set once `conn` runs a statement other than COMMIT off the event loop's
    thread: a call that met another process's lock and now waits for it in the
    connection's thread (Connection.without_sleeping). `also`: a trace callback to keep
    (SQLite keeps one per connection).

    Call it before the connection's thread has anything to do; the callback stays until
    the connection closes. Setting a trace callback while the thread runs a statement
    deadlocks: the setter waits for the connection's mutex holding the GIL, which the
    thread's callback needs."""
    loop = asyncio.get_running_loop()
    event = asyncio.Event()
    loop_thread = threading.get_ident()

    def trace(sql: str) -> None:
        if also is not None:
            also(sql)
        if threading.get_ident() != loop_thread and sql.strip().upper() != "COMMIT":
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(event.set)

    conn._raw.set_trace_callback(trace)
    return event


async def thread_idle(conn: Connection) -> None:
    """Return once every call handed to `conn`'s thread has ended: its one thread runs
    them in order, so a no-op handed to it now runs after all of them."""
    await conn.in_thread(lambda raw: None)
