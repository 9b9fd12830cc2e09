"""The SQLite backend of ``Store``: the default for one machine.

One ``SqliteStore`` reads through one connection and writes through another, whose
writes are committed a batch at a time (``commits``); nonces live in a
database file of their own (``opening``). Several stores (processes, or ``serve
--workers N``) may share one file: WAL mode lets readers run beside the one writer,
each batch is a ``BEGIN IMMEDIATE`` transaction that waits up to ``busy_timeout``
for the write lock, and state changes are compare-and-set updates whose row count
(or whose ``RETURNING`` rows) are checked.

Storage format: datetimes are ISO 8601 UTC text of one fixed width
(``2026-01-01T00:00:00.000000Z``), so text order is time order; ``names`` is a
JSON array. All SQL is parameterised. sqlite3 errors surface as ``StoreError``
(a UNIQUE or PRIMARY KEY violation as ``Conflict``, a busy or locked database past the
busy timeout as ``StoreUnavailable``: ``base.py``).

The certificate methods live here; the ACME resources in ``accounts``,
``orders``, ``authorizations`` and ``nonces``, leases in ``leases``, pruning in
``retention``, External Account Binding keys in ``eab``, rate limits' buckets in
``limits``, CRLs and marks for early renewal in ``revocation``, the audit log in
``audit``, operators' lists and counts in ``operations``, the plumbing they share and
the concurrency contract in ``base``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime

from acme_ca.clock import Clock, SystemClock
from acme_ca.domain.limits import Spend
from acme_ca.domain.models import (
    Account,
    Authorization,
    CertificateRecord,
    CertificateStatus,
    Order,
    OrderStatus,
)
from acme_ca.errors import Conflict, StoreError
from acme_ca.store import guards
from acme_ca.store.sqlite import accounts as sqlite_accounts
from acme_ca.store.sqlite import orders as sqlite_orders
from acme_ca.store.sqlite.accounts import AccountMethods
from acme_ca.store.sqlite.audit import AuditMethods
from acme_ca.store.sqlite.authorizations import AuthorizationMethods
from acme_ca.store.sqlite.base import (
    SqliteBase,
    from_text,
    optional_time,
    refusal,
    to_text,
)
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.eab import EabMethods
from acme_ca.store.sqlite.leases import LeaseMethods
from acme_ca.store.sqlite.limits import LimitMethods, spend_in
from acme_ca.store.sqlite.migrate import sqlite_schema_version
from acme_ca.store.sqlite.nonces import NonceMethods
from acme_ca.store.sqlite.opening import MEMORY, open_connections, read_boot_id
from acme_ca.store.sqlite.operations import OperationsMethods
from acme_ca.store.sqlite.orders import SET_ORDER_STATUS, OrderMethods
from acme_ca.store.sqlite.retention import RetentionMethods
from acme_ca.store.sqlite.revocation import RevocationMethods
from acme_ca.store.sqlite.rows import (
    account_row,
    authorization_row,
    certificate_row,
    challenge_row,
    order_row,
    to_certificate,
    to_order,
)

__all__ = ["MEMORY", "SqliteStore", "from_text", "to_text"]

# Rows are read with SELECT * and mapped by column name, so a later migration that
# adds a column breaks nothing here.
_SELECT_ONE = "SELECT * FROM certificates WHERE serial = ?"
_INSERT = """
INSERT INTO certificates (
    serial, issuer, names, profile, not_before, not_after, created_at, status, der,
    account_id, order_id, revoked_at, revocation_reason, renew_early_at, replaced_by
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (serial) DO NOTHING"""
_STORE = """
UPDATE certificates SET status = 'issued', der = ? WHERE serial = ? AND status = 'reserved'
RETURNING *"""
_REVOKE = """
UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?
WHERE serial = ? AND status = 'issued'
RETURNING *"""
# Only certificates still valid after a moment: a range of certificates_by_not_after.
_LATEST_EXPIRY = """
SELECT MAX(not_after) AS latest FROM certificates WHERE not_after > ? AND issuer = ?"""
# Keyset pagination on (created_at, serial): certificates_by_created, or
# certificates_by_status for one status; a notAfter range (`expiring`) may instead be
# read from certificates_by_not_after and sorted, when the planner finds it narrower.
_PAGE_KEY = "SELECT created_at, serial FROM certificates WHERE serial = ?"
_IN_STATUS = "status = ?"
_EXPIRING = "not_after > ? AND not_after <= ?"
_AFTER_KEY = "(created_at, serial) > (?, ?)"
_LIST = "SELECT * FROM certificates WHERE {} ORDER BY created_at, serial LIMIT ?"


class SqliteStore(NonceMethods, LeaseMethods, AccountMethods, OrderMethods, AuthorizationMethods,
                  RetentionMethods, EabMethods, LimitMethods, RevocationMethods, AuditMethods,
                  OperationsMethods, SqliteBase):
    """``Store`` on one SQLite file (or ``:memory:`` for tests)."""

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        boot_id: Callable[[], str | None] = read_boot_id,
    ) -> SqliteStore:
        """Open (creating it 0600 if missing) and migrate the database at ``path``.

        The parent directory must exist. ``clock`` stamps the migrations applied;
        ``boot_id`` tells this boot from another, for the nonce file (``opening``).
        """
        target = os.fspath(path)
        applied_at = to_text((clock or SystemClock()).now())
        return cls(await open_connections(target, applied_at, boot_id()), target)

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

        async def insert(conn: Connection) -> None:
            await conn.executemany(plain(sqlite_accounts._INSERT), map(account_row, accounts))
            await conn.executemany(_INSERT, map(certificate_row, certificates))
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

        await self._transaction(insert)

    async def schema_version(self) -> int:
        self._check_open()
        return await sqlite_schema_version(self._reader)

    async def reserve_serial(self, record: CertificateRecord) -> None:
        guards.check_reservation(record)
        values = certificate_row(record)

        async def insert(conn: Connection) -> None:
            async with conn.execute(_INSERT, values) as cursor:
                if cursor.rowcount != 1:
                    raise Conflict(f"certificate serial {record.serial} already exists")

        await self._transaction(insert)

    async def start_issuance(self, order_id: str, record: CertificateRecord, *,
                             spend: Spend | None = None) -> Order:
        guards.check_reservation(record, order_id)
        values = certificate_row(record)
        change = (OrderStatus.PROCESSING.value, None, order_id, OrderStatus.READY.value)

        async def start(conn: Connection) -> Order:
            rows = list(await conn.execute_fetchall(SET_ORDER_STATUS, change))
            if not rows:
                raise await refusal(conn, "order", order_id, "ready")
            if spend is not None:
                await spend_in(conn, spend, record.created_at)
            async with conn.execute(_INSERT, values) as cursor:
                if cursor.rowcount != 1:  # nothing of this transaction is kept
                    raise StoreError(f"certificate serial {record.serial} already exists")
            return to_order(rows[0])

        return await self._transaction(start)

    async def processing_orders(
        self, started_before: datetime, *, limit: int
    ) -> list[tuple[Order, CertificateRecord | None]]:
        guards.check_limit(limit)
        rows = await self._read(sqlite_orders.PROCESSING_SINCE, (to_text(started_before), limit))
        found: list[tuple[Order, CertificateRecord | None]] = []
        for row in rows:
            serial = row["issuance_serial"]
            record = None if serial is None else await self.get_certificate(serial)
            found.append((to_order(row), record))
        return found

    async def store_certificate(self, serial: str, der: bytes) -> CertificateRecord:
        row = await self._compare_and_set(_STORE, (der, serial), "certificate", serial,
                                          CertificateStatus.RESERVED.value)
        return to_certificate(row)

    async def get_certificate(self, serial: str) -> CertificateRecord:
        rows = await self._read(_SELECT_ONE, (serial,))
        if not rows:
            raise guards.not_found("certificate", serial)
        return to_certificate(rows[0])

    async def revoke_certificate(
        self, serial: str, reason: int, revoked_at: datetime
    ) -> CertificateRecord:
        values = (to_text(revoked_at), reason, serial)
        row = await self._compare_and_set(_REVOKE, values, "certificate", serial,
                                          CertificateStatus.ISSUED.value)
        return to_certificate(row)

    async def latest_expiry(self, issuer: str, *, after: datetime) -> datetime | None:
        rows = await self._read(_LATEST_EXPIRY, (to_text(after), issuer))
        return optional_time(rows[0]["latest"])

    async def list_certificates(
        self,
        *,
        status: CertificateStatus | None = None,
        limit: int = 100,
        after_serial: str | None = None,
        expiring: tuple[datetime, datetime] | None = None,
    ) -> list[CertificateRecord]:
        guards.check_limit(limit)
        key: tuple[str, str] = ("", "")  # before every row
        if after_serial is not None:
            found = await self._read(_PAGE_KEY, (after_serial,))
            if not found:
                raise guards.not_found("certificate", after_serial)
            key = (found[0]["created_at"], found[0]["serial"])
        terms: list[str] = []
        values: list[object] = []
        if status is not None:
            terms.append(_IN_STATUS)
            values.append(status.value)
        if expiring is not None:
            terms.append(_EXPIRING)
            values.extend(to_text(moment) for moment in expiring)
        rows = await self._read(_LIST.format(" AND ".join([*terms, _AFTER_KEY])),
                                (*values, *key, limit))
        return [to_certificate(row) for row in rows]
