"""What every part of the PostgreSQL backend shares: the pool, and its concurrency rules.

``PostgresStore`` is assembled from one class per group of entities
(``certificates``, ``accounts``, ``orders``, ``authorizations``, ``cluster``); each
inherits ``PostgresBase`` for the ways to reach the database:

- ``_read(sql, *args)``: one statement, its rows returned.
- ``_lookup(sql, *keys)``: a read by ids or keys; no rows, without asking the
  server, when a key holds a character PostgreSQL text cannot (NUL): no row can
  have it, and the caller answers as for any id it does not know (``NotFound``).
- ``_write(sql, *args)``: one statement in a transaction of its own (autocommit).
- ``_compare_and_set(sql, args, state=, ...)``: a guarded ``_write``; when it changed
  nothing, the row's status, read by ``state`` in a statement of its own, explains
  the refusal (``guards.refused``).
- ``_transaction(body)``: ``body(conn)`` runs several statements as one transaction,
  committed when it returns and rolled back when it raises.

A connection the server closed while it sat in the pool (a restart, a failover, a
``pg_terminate_backend``) is found out at its next use. The operation is then tried
once more on a new connection if that is safe: always for a read, and for a write
only when asyncpg provably refused to send it (``pool.unsent``). A write whose
connection broke while it was sent, or whose reply could not be read, may or may not
have happened, and raises ``StoreUnavailable``. A programming error asyncpg reports
(a wrong number of arguments) is neither tried again nor taken for a broken
connection: it is a ``StoreError`` naming it.

Concurrency, on PostgreSQL's default isolation (READ COMMITTED; every statement sees
what was committed when it started):

- A compare-and-set is ``UPDATE ... WHERE id = $1 AND status = $2 RETURNING ...``.
  Of two racers, the second waits for the first's row lock, then evaluates its WHERE
  again on the row as the first left it, finds the status changed and updates nothing:
  exactly one wins, the other gets ``Conflict`` (``guards.refused``).
- A transaction that reads rows to decide a change locks them first
  (``record_validation`` locks the orders it may change, ordered by id so that two
  transactions never wait for each other), and reads what the decision depends on in
  a later statement, which sees everything committed before the lock was granted.
- ``record_validation`` locks a challenge, its authorization, then orders; no other
  transaction locks an order before an authorization or a challenge, so no two
  transactions of this backend wait for each other in a cycle (deadlock).

Timestamps are ``timestamptz`` and come back as timezone-aware UTC datetimes; a naive
datetime is refused with ``ValueError`` before it reaches asyncpg, which would
otherwise take it for UTC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from acme_ca.errors import StoreError
from acme_ca.store import guards
from acme_ca.store.postgres.pool import TIMEOUT, broken, store_error, unsent

T = TypeVar("T")
Connection = asyncpg.Connection
Record = asyncpg.Record


class PostgresBase:
    """The pool, and the ways to use it."""

    def __init__(self, pool: asyncpg.Pool, target: str, timeout: float = TIMEOUT) -> None:
        """Use ``await PostgresStore.open(url)``; this only wraps an open pool."""
        self._pool = pool
        self._target = target  # "PostgreSQL at host:port/db", for messages
        self._timeout = timeout  # seconds, for a free connection (and for closing)
        self._closed = False

    async def close(self) -> None:
        """Wait (``timeout`` at most) for the operations in progress, then close every
        connection; closing twice is harmless."""
        self._closed = True
        if self._pool.is_closing():
            return
        try:
            await asyncio.wait_for(self._pool.close(), self._timeout)
        except TimeoutError:
            self._pool.terminate()

    async def _read(self, sql: str, *args: object) -> list[Record]:
        return await self._run(lambda conn: conn.fetch(sql, *args), retry=broken)

    async def _lookup(self, sql: str, *keys: object) -> list[Record]:
        if any(isinstance(key, str) and "\x00" in key for key in keys):
            return []
        return await self._read(sql, *keys)

    async def _write(self, sql: str, *args: object) -> list[Record]:
        return await self._run(lambda conn: conn.fetch(sql, *args))

    async def _compare_and_set(
        self, sql: str, args: Sequence[object], *, state: str, kind: str, row_id: str,
        expected: str,
    ) -> Record:
        """The row the guarded statement ``sql`` returned. When it changed nothing, the
        refusal (``guards.refused``), from the ``status`` column that the query ``state``
        then reads for ``row_id``, in a statement of its own."""
        rows = await self._write(sql, *args)
        if not rows:
            found = await self._read(state, row_id)
            raise guards.refused(kind, row_id, found[0]["status"] if found else None, expected)
        return rows[0]

    async def _transaction(self, body: Callable[[Connection], Awaitable[T]]) -> T:
        async def transaction(conn: Connection) -> T:
            async with conn.transaction():
                return await body(conn)

        return await self._run(transaction)

    async def _move_all(self, lock: str, args: Sequence[object],
                        change: Callable[[Record], tuple[object, ...] | None],
                        update: str) -> int:
        """In one transaction: the rows ``lock`` reads and locks (a batch), then one
        ``update`` of every row ``change`` decides parameters for (None: left as it is),
        given as one array per parameter; how many rows it changed."""

        async def move(conn: Connection) -> int:
            changes = [params for row in await conn.fetch(lock, *args)
                       if (params := change(row)) is not None]
            if not changes:
                return 0
            return affected(await conn.execute(update, *map(list, zip(*changes, strict=True))))

        return await self._transaction(move)

    async def _run(self, work: Callable[[Connection], Awaitable[T]],
                   retry: Callable[[BaseException], bool] = unsent) -> T:
        """``work`` on a connection of the pool, tried once more after an error for
        which ``retry`` says so; database failures mapped (``pool.store_error``)."""
        self._check_open()
        try:
            try:
                return await self._attempt(work)
            except Exception as exc:
                if not retry(exc):
                    raise
            return await self._attempt(work)
        except Exception as exc:
            mapped = store_error(exc, self._target, self._timeout)
            if mapped is exc:
                raise
            raise mapped from exc

    async def _attempt(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """``work`` on one connection. A broken one is dropped rather than given back,
        and the pool's others are replaced at their next use: what broke one (a
        restart of the server, a failover) has most likely broken them all."""
        conn = await self._pool.acquire(timeout=self._timeout)
        try:
            return await work(conn)
        except Exception as exc:
            if broken(exc):
                with suppress(asyncpg.InterfaceError):  # released already, as asyncpg
                    conn.terminate()                    # does with one it closed
                await self._pool.expire_connections()
            raise
        finally:
            await self._give_back(conn)

    async def _give_back(self, conn: Connection) -> None:
        """Return ``conn`` to the pool, which resets it first (a statement of its own).
        That runs after the work ended, so a failure there is the connection's, not the
        work's: the connection is dropped and the work's outcome stands (raising here
        would have a committed write tried again, and lose to itself)."""
        try:
            await self._pool.release(conn, timeout=self._timeout)
        except Exception:
            with suppress(Exception):
                conn.terminate()
            await self._pool.expire_connections()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self._target}: the store is closed")


def aware(moment: datetime) -> datetime:
    """``moment`` if it is timezone-aware; ``ValueError`` for a naive datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the store needs timezone-aware UTC")
    return moment


def optional_aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else aware(moment)


def first(rows: list[Record]) -> Any:
    """The first column of the first row, or None if there is no row."""
    return rows[0][0] if rows else None


def affected(status: str) -> int:
    """The rows a statement changed, from the status asyncpg returns ("UPDATE 12")."""
    return int(status.rsplit(" ", 1)[-1])
