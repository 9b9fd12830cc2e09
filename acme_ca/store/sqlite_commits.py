"""Group commit: the transactions of many writers, one durable COMMIT.

With ``synchronous = FULL`` a COMMIT waits for the disk (an fsync, milliseconds),
which is most of what a write costs, and SQLite lets one writer in at a time. So
writers queue here, and a committer takes them a batch at a time: it opens one
``BEGIN IMMEDIATE`` transaction, runs every queued writer's statements in it, each
inside its own SAVEPOINT, commits once, and only then tells each writer it is done.
Writers that arrive while a COMMIT is on the disk form the next batch: under load
one fsync covers many writes, and with one writer at a time nothing waits.

What each writer still gets, as if it had a transaction of its own:

- atomicity: a writer whose statements raise is rolled back to its savepoint, alone;
  the other writers of the batch go on;
- durability: no writer hears "done" before the COMMIT that holds its writes returned;
  if that COMMIT fails, every writer of the batch gets ``StoreError`` and none of the
  batch is kept;
- isolation: writers run one at a time, in arrival order, each seeing the writes before
  it, so a compare-and-set is exact. Readers use another connection, which sees only
  what is committed.

A writer's body runs on the event loop's thread (statements inside a transaction do
not wait on the disk); BEGIN falls back to the connection's thread only when another
process holds the write lock, and COMMIT always runs there. A writer cancelled
before its turn is skipped; one cancelled later may still be committed, as a request
whose client went away after sending it may.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from acme_ca.errors import StoreError
from acme_ca.store.sqlite_connection import Connection

T = TypeVar("T")
Body = Callable[[Connection], Awaitable[Any]]

log = logging.getLogger(__name__)

_SAVEPOINT = "SAVEPOINT writer"
_RELEASE = "RELEASE writer"
_UNDO = "ROLLBACK TO writer"
LOCK_POLL = 0.0005  # seconds between tries for a write lock another process holds


@dataclass
class _Writer:
    body: Body
    done: asyncio.Future[Any]
    result: Any = None
    ran: bool = field(default=False)


class GroupCommit:
    """The one way to write through ``conn``; see the module docstring."""

    def __init__(self, conn: Connection, *, busy_timeout_ms: int, name: str) -> None:
        self._conn = conn
        self._busy_timeout_ms = busy_timeout_ms
        self._name = name
        self._queue: deque[_Writer] = deque()
        self._committer: asyncio.Task[None] | None = None
        self._closed = False

    async def run(self, body: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``body(conn)`` in the next batch; its result once that batch is durable."""
        if self._closed:
            raise StoreError(f"{self._name}: the store is closed")
        writer = _Writer(body, asyncio.get_running_loop().create_future())
        self._queue.append(writer)
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_batches())
        result: T = await writer.done
        return result

    async def close(self) -> None:
        """Finish what is queued; later writers get ``StoreError``."""
        self._closed = True
        if self._committer is not None:
            await self._committer

    async def _commit_batches(self) -> None:
        try:
            while self._queue:
                await self._one_batch()
        finally:
            self._committer = None
            for writer in self._queue:  # only if this task itself was cancelled
                _fail(writer, StoreError(f"{self._name}: the store is closing"))
            self._queue.clear()

    async def _one_batch(self) -> None:
        try:
            await self._begin()
        except Exception as exc:
            error = _store_error(self._name, exc)
            while self._queue:
                _fail(self._queue.popleft(), error)
            return
        batch: list[_Writer] = []
        try:
            while self._queue:
                writer = self._queue.popleft()
                if writer.done.done():  # cancelled while it waited
                    continue
                batch.append(writer)  # a writer whose own body failed is done already
                await self._run_writer(writer)
                if not self._conn.in_transaction:
                    raise StoreError(f"{self._name}: SQLite rolled the transaction back")
            await self._conn.execute("COMMIT")
        except BaseException as exc:  # none of the batch is kept: every writer hears so
            log.error("%s: a batch of %d writes failed: %s", self._name, len(batch), exc)
            await self._rollback()
            error = _store_error(self._name, exc) if isinstance(exc, Exception) else StoreError(
                f"{self._name}: interrupted before the commit")
            for writer in batch:
                _fail(writer, error)
            if not isinstance(exc, Exception):
                raise
            return
        for writer in batch:
            if writer.ran and not writer.done.done():
                writer.done.set_result(writer.result)

    async def _run_writer(self, writer: _Writer) -> None:
        conn = self._conn
        await conn.execute(_SAVEPOINT)
        try:
            writer.result = await writer.body(conn)
        except BaseException as exc:  # the writer's own failure: undo it alone
            if conn.in_transaction:
                try:
                    await conn.execute(_UNDO)
                    await conn.execute(_RELEASE)
                except sqlite3.Error:
                    await self._rollback()
            _fail(writer, exc)
            if not isinstance(exc, Exception):
                raise
            return
        await conn.execute(_RELEASE)
        writer.ran = True

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE at once if the write lock is free, else wait for it in the
        connection's thread (another process is writing)."""
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            deadline = time.monotonic() + self._busy_timeout_ms / 1000
            await self._conn.in_thread(lambda raw: _begin_by(raw, deadline))

    async def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                await self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("%s: ROLLBACK failed: %s", self._name, exc)


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def _begin_by(raw: sqlite3.Connection, deadline: float) -> None:
    """Try for the write lock every ``LOCK_POLL`` seconds until ``deadline``.

    SQLite's own busy handler backs off to 100 ms sleeps, so under steady contention
    between processes a writer could sleep long after the lock was free; another
    process holds it only for one batch (milliseconds), so a short fixed poll keeps
    the wait close to the time the lock is really held.
    """
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(LOCK_POLL)
def _fail(writer: _Writer, exc: BaseException) -> None:
    if not writer.done.done():
        writer.done.set_exception(exc)


def _store_error(name: str, exc: Exception) -> Exception:
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"{name}: {exc}")
