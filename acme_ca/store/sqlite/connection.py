"""An asyncio face for one sqlite3 connection that keeps the disk waits off the event loop.

A statement on a WAL database costs microseconds of CPU unless it commits; handing
every statement to a thread and back (aiosqlite's design) costs more than the statement
itself: measured under load, aiosqlite's hand-offs were 42% of the server's CPU. So:

- statements run right here on the event loop's thread;
- what waits on the disk runs on the connection's own thread: COMMIT, and a write
  outside an explicit transaction (it commits, and with synchronous=FULL that fsyncs);
- opening and closing too.

A lock another process holds (SQLITE_BUSY: busy_timeout is 0, so SQLite never sleeps
on the loop) is waited for by trying again on the loop every ``LOCK_POLL`` seconds,
the loop serving its other tasks in between (``without_sleeping``). Waiting in the
connection's thread instead (the design before) cost more than it saved with two
workers: each try there needs the GIL, which the busy loop holds up to the switch
interval (5 ms), the lock once won stays held while the thread waits for the GIL
again, and every later call on the connection queued behind the waiting one. Measured
with ``serve --workers 2``, C=64: 6.6 against 8.3 ms of CPU per issuance, 206 against
152 issuances/s.

Why a connection is never used by two threads, nor by two statements, at once: the
writer has one user, the committer task (``commits``), which awaits its COMMIT in the
thread to the end; a call on the reader or the nonce connection runs its statements to
their end (execute and fetch) on the loop without yielding, so such calls interleave
whole, and one trying again for a lock holds nothing between tries (each failed whole).
Opening and closing use the thread too; ``close`` first waits for the calls trying again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
LOCK_POLL = 0.0005  # seconds between tries for a lock another process holds
Params = tuple[Any, ...] | dict[str, Any] | list[Any]
_READ_ONLY = ("SELECT", "WITH", "EXPLAIN", "BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE")


class Connection:
    def __init__(self, raw: sqlite3.Connection, thread: ThreadPoolExecutor,
                 durable: bool) -> None:
        self._raw = raw
        self._thread = thread
        self._durable = durable
        self._closed = False
        self._retrying = 0  # calls waiting on the loop for another process's lock
        self._idle = asyncio.Event()  # set while none is: every close waits on this one
        self._idle.set()

    @classmethod
    async def connect(cls, path: str, *, durable: bool = True) -> Connection:
        """`durable` False: a connection whose commits never fsync (synchronous=OFF, as
        for nonces), so nothing it does waits on the disk."""
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        try:
            raw = await loop.run_in_executor(
                thread,
                lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False),
            )
        except BaseException:
            thread.shutdown(wait=False)
            raise
        raw.row_factory = sqlite3.Row
        return cls(raw, thread, durable)

    @property
    def durable(self) -> bool:
        """Its COMMIT waits on the disk, in the connection's thread."""
        return self._durable

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction

    def _waits_on_disk(self, sql: str) -> bool:
        if not self._durable:
            return False
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head in ("COMMIT", "END"):
            return True
        return not self._raw.in_transaction and head not in _READ_ONLY

    async def _run(self, sql: str, call: Any) -> Any:
        if self._waits_on_disk(sql):
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        return call()

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self._run(sql, lambda: self._raw.execute(sql, params).fetchall())

    def execute(self, sql: str, params: Params = ()) -> _Executing:
        """Awaitable (the cursor), or an async context manager yielding it."""
        return _Executing(self._run(sql, lambda: self._raw.execute(sql, params)))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> sqlite3.Cursor:
        return await self._run(sql, lambda: self._raw.executemany(sql, rows))

    async def without_sleeping(self, call: Callable[[sqlite3.Connection], T],
                               timeout: float) -> T:
        """``call(raw connection)`` on the event loop, which must never sleep on a lock:
        the connection's busy_timeout is 0, and while another process holds a lock the
        call is tried again on the loop every ``LOCK_POLL`` seconds (the loop serving
        other tasks in between, which may use the connection meanwhile), up to
        ``timeout`` seconds; then SQLITE_BUSY is raised."""
        try:
            return call(self._raw)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
        deadline = time.monotonic() + timeout
        self._retrying += 1
        self._idle.clear()
        try:
            while True:
                await asyncio.sleep(LOCK_POLL)
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                try:
                    return call(self._raw)
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc) or time.monotonic() >= deadline:
                        raise
        finally:
            self._retrying -= 1
            if not self._retrying:
                self._idle.set()

    async def close(self) -> None:
        """Close the connection and its thread, after every call waiting for a lock
        (``without_sleeping``) has ended; closing twice is harmless, at once too."""
        if self._closed:
            return
        while self._retrying:  # one event for every closer: two closes at once both end
            await self._idle.wait()
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._raw.close)
        finally:
            self._thread.shutdown(wait=False)


async def to_the_end(call: Awaitable[T]) -> tuple[T | BaseException, bool]:
    """Await a call that runs in a connection's thread to its very end, even when the
    awaiting task is cancelled meanwhile: the event loop must never use a connection
    while its thread has it. Returns (the result, or the exception the call raised;
    whether a cancellation arrived, which the caller then raises)."""
    future = asyncio.ensure_future(call)
    interrupted = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            interrupted = True
        except Exception:  # noqa: S110 - read from the future below
            pass
    error = future.exception()
    return (error if error is not None else future.result()), interrupted


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY (any extended code): another connection holds the lock wanted."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


class _Executing:
    def __init__(self, pending: Any) -> None:
        self._pending = pending
        self._cursor: sqlite3.Cursor | None = None

    def __await__(self) -> Generator[Any, None, sqlite3.Cursor]:
        return self._pending.__await__()

    async def __aenter__(self) -> sqlite3.Cursor:
        self._cursor = await self._pending
        return self._cursor

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._cursor is not None:
            self._cursor.close()
