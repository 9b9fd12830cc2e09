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
- durability: no writer hears anything, success or its own failure, before the COMMIT
  that holds the batch returned (a writer that lost a compare-and-set to an earlier
  writer of the batch must not act on that change before it is committed); if the
  batch fails anywhere, every writer of it gets ``StoreError`` and none of it is kept;
- isolation: writers run one at a time, in arrival order, each seeing the writes before
  it, so a compare-and-set is exact. Readers use another connection, which sees only
  what is committed.

A writer's body runs on the event loop's thread (statements inside a transaction do
not wait on the disk), BEGIN too: when another process holds the write lock it is
tried again between the loop's other tasks, and the writers arriving meanwhile join
the batch. COMMIT always runs in the connection's thread. While the thread has the
connection the loop never touches it, cancellation included: a cancelled batch waits
for its COMMIT to end and tells its writers what the disk holds. A writer cancelled
before its turn is skipped; one cancelled later may still be committed, as a request
whose client went away after sending it may.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from acme_ca.errors import StoreError
from acme_ca.store.sqlite.connection import Connection, to_the_end

T = TypeVar("T")
Body = Callable[[Connection], Awaitable[Any]]

log = logging.getLogger(__name__)

_SAVEPOINT = "SAVEPOINT writer"
_RELEASE = "RELEASE writer"
_UNDO = "ROLLBACK TO writer"


@dataclass
class _Writer:
    body: Body
    done: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None  # the writer's own failure, told after the COMMIT


class GroupCommit:
    """The one way to write through ``conn``; see the module docstring."""

    def __init__(self, conn: Connection, *, busy_timeout_ms: int, name: str,
                 errors: Callable[[sqlite3.Error], StoreError]) -> None:
        """``errors``: the store's error for a sqlite3 error that fails a batch (BEGIN
        after ``busy_timeout_ms``, COMMIT)."""
        self._conn = conn
        self._busy_timeout_ms = busy_timeout_ms
        self._name = name
        self._errors = errors
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
        """Finish what is queued; later writers get ``StoreError``. Cancelling this
        call does not cancel the batch in progress (see ``to_the_end``)."""
        self._closed = True
        if self._committer is not None:
            await asyncio.shield(self._committer)

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
        except BaseException as exc:  # BEGIN failed whole (or never ran): nothing to undo
            error = self._batch_error(exc)
            while self._queue:
                _fail(self._queue.popleft(), error)
            _raise_if_interrupted(exc)
            return
        batch: list[_Writer] = []
        try:
            while self._queue:
                writer = self._queue.popleft()
                if writer.done.done():  # cancelled while it waited
                    continue
                batch.append(writer)
                await self._run_writer(writer)
                if not self._conn.in_transaction:
                    raise StoreError(f"{self._name}: SQLite rolled the transaction back")
        except BaseException as exc:  # before the COMMIT: nothing is on the disk yet
            self._abandon(batch, exc)
            await self._rollback()
            _raise_if_interrupted(exc)
            return
        if self._conn.durable:  # in the thread: wait for it to the end, come what may
            outcome, interrupted = await to_the_end(self._conn.execute("COMMIT"))
        else:  # done right here, so no other task can read the batch before it ends
            outcome, interrupted = None, False
            try:
                await self._conn.execute("COMMIT")
            except Exception as exc:
                outcome = exc
        if isinstance(outcome, BaseException):
            self._abandon(batch, outcome)
            await self._rollback()
        else:
            # Only now, with the batch durable, does any writer hear anything: one that
            # failed a compare-and-set against an earlier writer of the batch must not
            # act on that writer's change before it is committed.
            for writer in batch:
                if writer.error is not None:
                    _fail(writer, writer.error)
                elif not writer.done.done():
                    writer.done.set_result(writer.result)
        if interrupted:
            raise asyncio.CancelledError

    def _batch_error(self, exc: BaseException) -> StoreError:
        """What every writer of a failed batch hears."""
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, sqlite3.Error):
            return self._errors(exc)
        if isinstance(exc, Exception):
            return StoreError(f"{self._name}: {exc}")
        return StoreError(f"{self._name}: interrupted before the commit")

    def _abandon(self, batch: list[_Writer], exc: BaseException) -> None:
        """The batch is not kept: every writer of it hears so."""
        log.error("%s: a batch of %d writes failed: %s", self._name, len(batch), exc)
        error = self._batch_error(exc)
        for writer in batch:
            _fail(writer, error)

    async def _run_writer(self, writer: _Writer) -> None:
        """The writer's body inside its savepoint; its own failure undoes its writes
        alone and is kept for after the COMMIT."""
        conn = self._conn
        await conn.execute(_SAVEPOINT)
        try:
            writer.result = await writer.body(conn)
        except Exception as exc:
            writer.error = exc
            await conn.execute(_UNDO)
        await conn.execute(_RELEASE)

    async def _begin(self) -> None:
        """BEGIN IMMEDIATE at once if the write lock is free, else tried again until it
        is (another process is writing): ``without_sleeping``."""
        await self._conn.without_sleeping(lambda raw: raw.execute("BEGIN IMMEDIATE"),
                                          self._busy_timeout_ms / 1000)

    async def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                await self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("%s: ROLLBACK failed: %s", self._name, exc)


def _fail(writer: _Writer, exc: BaseException) -> None:
    if not writer.done.done():
        writer.done.set_exception(exc)




def _raise_if_interrupted(exc: BaseException) -> None:
    """Re-raise what is not an error of the batch (cancellation, KeyboardInterrupt)."""
    if not isinstance(exc, Exception):
        raise exc
