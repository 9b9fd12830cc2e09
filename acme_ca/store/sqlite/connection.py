"""An asyncio face for one sqlite3 connection that keeps the disk waits off the event loop.

A statement on a WAL database costs microseconds of CPU unless it commits; handing
every statement to a thread and back (aiosqlite's design) costs more than the statement
itself: measured under load, aiosqlite's hand-offs were 42% of the server's CPU. So:

- statements run right here on the event loop's thread;
- what waits on the disk runs on the connection's own thread: COMMIT, and a write
  outside an explicit transaction (it commits, and with synchronous=FULL that fsyncs);
- opening and closing too.

The caller serialises use of a connection (the store holds an asyncio lock around each
call), so the connection is never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar, cast

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
        self._waiting: asyncio.Lock | None = None

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
        the connection's busy_timeout is 0, and when another process holds a lock the
        call is retried in the connection's thread (``retry_while_busy``, up to
        ``timeout`` seconds), later calls queueing behind it so that the two threads
        never use the connection at once."""
        if self._waiting is None:
            self._waiting = asyncio.Lock()
        if not self._waiting.locked():
            try:
                return call(self._raw)
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
        async with self._waiting:
            deadline = time.monotonic() + timeout
            give_up = threading.Event()
            outcome, interrupted = await to_the_end(
                self.in_thread(
                    lambda raw: retry_while_busy(lambda: call(raw), deadline, give_up)),
                give_up,
            )
            if interrupted:
                raise asyncio.CancelledError
            if isinstance(outcome, BaseException):
                raise outcome
            return cast(T, outcome)

    async def in_thread(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """``call(raw connection)`` on the connection's thread: for what may wait."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, call, self._raw)

    async def close(self) -> None:
        """Close the connection and its thread, after any call waiting in that thread
        (``without_sleeping``) has ended; closing twice is harmless."""
        if self._closed:
            return
        if self._waiting is not None:
            async with self._waiting:
                pass
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._raw.close)
        finally:
            self._thread.shutdown(wait=False)


async def to_the_end(call: Awaitable[T], give_up: threading.Event | None = None
                     ) -> tuple[T | BaseException, bool]:
    """Await a call that runs in a connection's thread to its very end, even when the
    awaiting task is cancelled meanwhile: the event loop must never use a connection
    while its thread has it. Returns (the result, or the exception the call raised;
    whether a cancellation arrived, which the caller then raises). ``give_up`` is set
    on cancellation, to cut a wait for a lock short."""
    future = asyncio.ensure_future(call)
    interrupted = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            interrupted = True
            if give_up is not None:
                give_up.set()
        except Exception:  # noqa: S110 - read from the future below
            pass
    error = future.exception()
    return (error if error is not None else future.result()), interrupted


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY (any extended code): another connection holds the lock wanted."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def retry_while_busy(call: Callable[[], T], deadline: float,
                     give_up: threading.Event | None = None) -> T:
    """``call()`` again every ``LOCK_POLL`` seconds while it meets SQLITE_BUSY, until the
    ``time.monotonic()`` ``deadline`` (or ``give_up``); for a connection's thread.

    SQLite's own busy handler backs off to 100 ms sleeps, so under steady contention
    between processes a caller could sleep long after the lock was free; another
    process holds a lock only for one batch or one statement (milliseconds at most),
    so a short fixed poll keeps the wait close to the time the lock is really held.
    """
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            stop = give_up is not None and give_up.is_set()
            if not is_busy(exc) or time.monotonic() >= deadline or stop:
                raise
        time.sleep(LOCK_POLL)


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
