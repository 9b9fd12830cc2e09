"""The SQLite backend of ``Store``: the default for one machine.

One ``SqliteStore`` owns one connection (plus one for nonces). Calls on it are
serialised by an ``asyncio.Lock``, so one coroutine's transaction never sees
another's half-done writes. Several stores (processes, or ``serve --workers N``) may share one file:
WAL mode lets readers run beside the one writer, every write is a
``BEGIN IMMEDIATE`` transaction that waits up to ``busy_timeout`` for the write
lock, and state changes are compare-and-set updates whose row count is checked
(or whose ``RETURNING`` rows are: a single-statement change needs no BEGIN).

Storage format: datetimes are ISO 8601 UTC text of one fixed width
(``2026-01-01T00:00:00.000000Z``), so text order is time order; ``names`` is a
JSON array. All SQL is parameterised. sqlite3 errors surface as ``StoreError``
(a UNIQUE or PRIMARY KEY violation as ``Conflict``).

The certificate methods live here; the ACME resources in ``sqlite_accounts``,
``sqlite_orders``, ``sqlite_authz`` and ``sqlite_nonces``, the connection plumbing
they share in ``sqlite_base``. Nonces are written through a second connection to
the same file that does not fsync its commits (see ``sqlite_nonces``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from acme_ca.clock import Clock, SystemClock
from acme_ca.domain.models import (
    Account,
    Authorization,
    CertificateRecord,
    CertificateStatus,
    Order,
)
from acme_ca.errors import Conflict, NotFound, StoreError
from acme_ca.store import sqlite_accounts, sqlite_orders
from acme_ca.store.migrations import migrate_sqlite, sqlite_schema_version
from acme_ca.store.sqlite_accounts import AccountMethods
from acme_ca.store.sqlite_authz import AuthorizationMethods
from acme_ca.store.sqlite_base import SqliteBase, from_text, optional_text, to_text
from acme_ca.store.sqlite_connection import Connection
from acme_ca.store.sqlite_nonces import NonceMethods
from acme_ca.store.sqlite_orders import OrderMethods
from acme_ca.store.sqlite_rows import account_row, authorization_row, challenge_row, order_row

__all__ = ["MEMORY", "SqliteStore", "from_text", "to_text"]

MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 5000
# RETURNING (3.35) and row values; the JSON functions are probed at open.
MIN_SQLITE = (3, 35, 0)

# Rows are read with SELECT * and mapped by column name, so a later migration that
# adds a column breaks nothing here.
_SELECT_ONE = "SELECT * FROM certificates WHERE serial = ?"
_SELECT_STATUS = "SELECT status FROM certificates WHERE serial = ?"
_INSERT = """
INSERT INTO certificates (
    serial, issuer, names, profile, not_before, not_after, created_at, status, der,
    account_id, order_id, revoked_at, revocation_reason
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (serial) DO NOTHING"""
_STORE = "UPDATE certificates SET status = ?, der = ? WHERE serial = ? AND status = ?"
_REVOKE = """
UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ?
WHERE serial = ? AND status = ?"""
# Keyset pagination on (created_at, serial); both use an index that ends in those columns.
_PAGE_KEY = "SELECT created_at, serial FROM certificates WHERE serial = ?"
_LIST_ALL = """
SELECT * FROM certificates WHERE (created_at, serial) > (?, ?)
ORDER BY created_at, serial LIMIT ?"""
_LIST_BY_STATUS = """
SELECT * FROM certificates WHERE status = ? AND (created_at, serial) > (?, ?)
ORDER BY created_at, serial LIMIT ?"""


class SqliteStore(NonceMethods, AccountMethods, OrderMethods, AuthorizationMethods, SqliteBase):
    """``Store`` on one SQLite file (or ``:memory:`` for tests)."""

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, clock: Clock | None = None) -> SqliteStore:
        """Open (creating it 0600 if missing) and migrate the database at ``path``.

        The parent directory must exist. ``clock`` stamps the migrations applied.
        """
        target = os.fspath(path)
        _check_sqlite_version()
        if target != MEMORY:
            _create_private_file(target)
        conn = await Connection.connect(target)
        nonce_conn: Connection | None = None
        try:
            await _configure(conn, wal=target != MEMORY)
            await _check_json(conn)
            await migrate_sqlite(conn, to_text((clock or SystemClock()).now()))
            if target != MEMORY:  # a second :memory: connection would be another database
                nonce_conn = await Connection.connect(target)
                await _configure_nonces(nonce_conn)
        except BaseException as exc:
            if nonce_conn is not None:
                await nonce_conn.close()
            await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{target}: {exc}") from exc
            raise
        return cls(conn, target, nonce_conn)

    async def bulk_insert(
        self,
        *,
        accounts: Sequence[Account] = (),
        certificates: Sequence[CertificateRecord] = (),
        authorizations: Sequence[Authorization] = (),
        orders: Sequence[Order] = (),
    ) -> None:
        """Many rows in one transaction: for seeding a database with a long history
        (benchmarks) and for imports. Not part of ``Store``: it skips the per-call
        checks of the Store methods, so the caller hands in consistent values (the
        schema's constraints still hold). Authorizations bring their challenges; orders
        their links to their authorizations."""

        def plain(sql: str) -> str:  # executemany takes no RETURNING clause
            return sql.split("RETURNING")[0]

        async with self._writing() as conn:
            await conn.executemany(plain(sqlite_accounts._INSERT), map(account_row, accounts))
            await conn.executemany(_INSERT, map(_to_row, certificates))
            await conn.executemany(
                sqlite_orders._INSERT_AUTHORIZATION, map(authorization_row, authorizations)
            )
            await conn.executemany(
                sqlite_orders._INSERT_CHALLENGE,
                [challenge_row(c) for a in authorizations for c in a.challenges],
            )
            await conn.executemany(plain(sqlite_orders._INSERT_ORDER), map(order_row, orders))
            await conn.executemany(
                sqlite_orders._INSERT_LINK,
                [(o.id, a, i) for o in orders for i, a in enumerate(o.authorization_ids)],
            )

    async def schema_version(self) -> int:
        async with self._reading() as conn:
            return await sqlite_schema_version(conn)

    async def reserve_serial(self, record: CertificateRecord) -> None:
        if record.status is not CertificateStatus.RESERVED or record.der is not None:
            raise ValueError("reserve_serial takes a RESERVED record without DER")
        values = _to_row(record)
        async with self._writing() as conn, conn.execute(_INSERT, values) as cursor:
            if cursor.rowcount != 1:
                raise Conflict(f"certificate serial {record.serial} already exists")

    async def store_certificate(self, serial: str, der: bytes) -> CertificateRecord:
        issued, reserved = CertificateStatus.ISSUED.value, CertificateStatus.RESERVED.value
        async with self._writing() as conn:
            async with conn.execute(_STORE, (issued, der, serial, reserved)) as cursor:
                changed = cursor.rowcount == 1
            if not changed:
                status = await _status(conn, serial)
                raise Conflict(f"certificate {serial} is {status}, not reserved")
            return await _fetch(conn, serial)

    async def get_certificate(self, serial: str) -> CertificateRecord:
        async with self._reading() as conn:
            return await _fetch(conn, serial)

    async def revoke_certificate(
        self, serial: str, reason: int, revoked_at: datetime
    ) -> CertificateRecord:
        values = (
            CertificateStatus.REVOKED.value,
            to_text(revoked_at),
            reason,
            serial,
            CertificateStatus.ISSUED.value,
        )
        async with self._writing() as conn:
            async with conn.execute(_REVOKE, values) as cursor:
                changed = cursor.rowcount == 1
            if not changed:
                status = await _status(conn, serial)
                if status is CertificateStatus.REVOKED:
                    raise Conflict(f"certificate {serial} is already revoked")
                raise Conflict(f"certificate {serial} is {status}, not issued")
            return await _fetch(conn, serial)

    async def list_certificates(
        self,
        *,
        status: CertificateStatus | None = None,
        limit: int = 100,
        after_serial: str | None = None,
    ) -> list[CertificateRecord]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        async with self._reading() as conn:
            key: tuple[str, str] = ("", "")  # before every row
            if after_serial is not None:
                found = list(await conn.execute_fetchall(_PAGE_KEY, (after_serial,)))
                if not found:
                    raise NotFound(f"no certificate with serial {after_serial}")
                key = (found[0]["created_at"], found[0]["serial"])
            if status is None:
                rows = await conn.execute_fetchall(_LIST_ALL, (*key, limit))
            else:
                rows = await conn.execute_fetchall(_LIST_BY_STATUS, (status.value, *key, limit))
            return [_to_record(row) for row in rows]


def _to_row(record: CertificateRecord) -> tuple[object, ...]:
    return (
        record.serial,
        record.issuer,
        json.dumps(list(record.names)),
        record.profile,
        to_text(record.not_before),
        to_text(record.not_after),
        to_text(record.created_at),
        record.status.value,
        record.der,
        record.account_id,
        record.order_id,
        optional_text(record.revoked_at),
        record.revocation_reason,
    )


def _to_record(row: sqlite3.Row) -> CertificateRecord:
    revoked_at = row["revoked_at"]
    return CertificateRecord(
        serial=row["serial"],
        issuer=row["issuer"],
        names=tuple(json.loads(row["names"])),
        profile=row["profile"],
        not_before=from_text(row["not_before"]),
        not_after=from_text(row["not_after"]),
        created_at=from_text(row["created_at"]),
        status=CertificateStatus(row["status"]),
        der=row["der"],
        account_id=row["account_id"],
        order_id=row["order_id"],
        revoked_at=None if revoked_at is None else from_text(revoked_at),
        revocation_reason=row["revocation_reason"],
    )


async def _fetch(conn: Connection, serial: str) -> CertificateRecord:
    rows = list(await conn.execute_fetchall(_SELECT_ONE, (serial,)))
    if not rows:
        raise NotFound(f"no certificate with serial {serial}")
    return _to_record(rows[0])


async def _status(conn: Connection, serial: str) -> CertificateStatus:
    rows = list(await conn.execute_fetchall(_SELECT_STATUS, (serial,)))
    if not rows:
        raise NotFound(f"no certificate with serial {serial}")
    return CertificateStatus(rows[0]["status"])


async def _configure(conn: Connection, *, wal: bool) -> None:
    """Per-connection settings; busy_timeout first, so the others wait for locks too."""
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    if wal:
        await _enable_wal(conn)
    await conn.execute("PRAGMA synchronous = FULL")  # a COMMIT survives power loss
    await conn.execute("PRAGMA foreign_keys = ON")


async def _configure_nonces(conn: Connection) -> None:
    """The nonce connection: commits without fsync, and it never checkpoints.

    A checkpoint run without fsync could lose what the main connection committed
    durably, so only the main connection (synchronous = FULL) checkpoints.
    """
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    await conn.execute("PRAGMA synchronous = OFF")
    await conn.execute("PRAGMA wal_autocheckpoint = 0")


def _check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        needed = ".".join(map(str, MIN_SQLITE))
        raise StoreError(
            f"acme-ca needs SQLite {needed} or newer; Python here uses {sqlite3.sqlite_version}"
        )


async def _check_json(conn: Connection) -> None:
    try:
        await conn.execute_fetchall("SELECT json_array(1)")
    except sqlite3.OperationalError as exc:
        raise StoreError(
            f"this SQLite {sqlite3.sqlite_version} lacks the JSON functions acme-ca needs"
        ) from exc


async def _enable_wal(conn: Connection) -> None:
    """Switch the file to WAL mode (persistent: a no-op once the file is in it).

    The switch needs an exclusive lock, and when two connections try it on a
    fresh file at once SQLite answers SQLITE_BUSY immediately rather than risk a
    deadlock, ignoring busy_timeout; so retry for as long as busy_timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
            break
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or loop.time() >= deadline:
                raise
            await asyncio.sleep(0.01)
    mode = str(rows[0][0]).lower()
    if mode != "wal":
        raise StoreError(
            f"SQLite refused WAL mode (journal_mode is {mode!r}); "
            "put the database on a local filesystem"
        )


def _create_private_file(path: str) -> None:
    """Create a missing database file readable by its owner only.

    SQLite gives its -wal and -shm files the mode of the database file, so they
    are private too. An existing file is left as it is.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the database: {exc.strerror}") from exc
    os.close(fd)
