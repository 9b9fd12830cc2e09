"""ACME orders in SQLite (RFC 8555 7.1.3, 7.4): the order methods of
``ReadStore`` and ``WriteStore`` for ``SqliteStore``.

An order is read with its authorization ids in one statement (``ORDER_COLUMNS``);
``create_order``, ``finish_order``, ``complete_order`` and ``expire_orders`` are one
``BEGIN IMMEDIATE`` transaction each.

An order that ``replaces`` a certificate (RFC 9773 5) is checked in the transaction
that inserts it: writers run one at a time (``base``), so of two orders replacing one
certificate the second finds the first (``guards.already_replaced``); the partial
unique index ``orders_replacing`` would refuse it anyway, and says so as
``AlreadyReplaced`` too. An older replacing order that lapsed (open, past its expiry)
is moved to INVALID in that transaction, as ``expire_orders`` would move it, and no
longer stands in the way. The order that becomes VALID marks the certificate it
replaces (``certificates.replaced_by``) in the transaction that makes it valid.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from acme_ca.domain import states
from acme_ca.domain.limits import Spend
from acme_ca.domain.models import Authorization, Order, OrderStatus
from acme_ca.errors import AlreadyReplaced, Conflict
from acme_ca.store import guards
from acme_ca.store.sqlite.base import SqliteBase, optional_time, refusal, to_text
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.limits import PENDING_COUNT, spend_in
from acme_ca.store.sqlite.rows import (
    ORDER_COLUMNS,
    authorization_row,
    challenge_row,
    order_row,
    to_order,
)

_INSERT_ORDER = """
INSERT INTO orders (
    id, account_id, status, identifiers, expires, created_at, not_before, not_after,
    error, certificate_serial, profile, replaces
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING *"""
_INSERT_AUTHORIZATION = """
INSERT INTO authorizations (
    id, account_id, identifier_type, identifier_value, wildcard, status, expires, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_CHALLENGE = """
INSERT INTO challenges (id, authorization_id, type, token, status, validated_at, error)
VALUES (?, ?, ?, ?, ?, ?, ?)"""
_INSERT_LINK = """
INSERT INTO order_authorizations (order_id, authorization_id, position) VALUES (?, ?, ?)"""

_BY_ID = f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"  # noqa: S608
_FOR_AUTHORIZATION = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE id IN (SELECT order_id FROM order_authorizations WHERE authorization_id = ?)
ORDER BY created_at, id"""  # noqa: S608
# Keyset pagination on (created_at, id), both in orders_by_account. An `after` that
# is not one of this account's orders makes the subquery NULL: an empty page.
_FIRST_PAGE = """
SELECT id FROM orders WHERE account_id = ?1
ORDER BY created_at, id LIMIT ?2"""
_NEXT_PAGE = """
SELECT id FROM orders
WHERE account_id = ?1
  AND (created_at, id) > (SELECT created_at, id FROM orders WHERE id = ?3 AND account_id = ?1)
ORDER BY created_at, id LIMIT ?2"""
# (status, error, id, expected): a compare-and-set, also in start_issuance and
# record_validation.
SET_ORDER_STATUS = f"""
UPDATE orders SET status = ?, error = COALESCE(?, error)
WHERE id = ? AND status = ?
RETURNING {ORDER_COLUMNS}"""  # noqa: S608
_FINISH = f"""
UPDATE orders SET status = 'valid', certificate_serial = ?
WHERE id = ? AND status = 'processing'
RETURNING {ORDER_COLUMNS}"""  # noqa: S608
_ISSUE = """
UPDATE certificates SET status = 'issued', der = ?
WHERE serial = ? AND status = 'reserved' AND order_id = ?
RETURNING serial"""
# PROCESSING -> VALID onto the certificate already stored for the order (a sweeper's move).
_COMPLETE = f"""
UPDATE orders SET status = 'valid', certificate_serial = ?1
WHERE id = ?2 AND status = 'processing' AND EXISTS (
    SELECT 1 FROM certificates
    WHERE serial = ?1 AND order_id = ?2 AND status IN ('issued', 'revoked'))
RETURNING {ORDER_COLUMNS}"""  # noqa: S608
# Orders PROCESSING since ?1 or earlier: since the reservation of their serial
# (start_issuance), or since their creation when no serial names them. Found through
# orders_processing, their serials through certificates_by_order; oldest order first.
PROCESSING_SINCE = f"""
SELECT {ORDER_COLUMNS}, (
    SELECT serial FROM certificates WHERE order_id = orders.id
    ORDER BY created_at DESC, serial DESC LIMIT 1
) AS issuance_serial
FROM orders
WHERE status = 'processing' AND COALESCE((
    SELECT MAX(created_at) FROM certificates WHERE order_id = orders.id
), created_at) <= ?1
ORDER BY created_at, id LIMIT ?2"""  # noqa: S608
# Open orders expired by ?1, the earliest first: a range of orders_open_by_expiry (0006),
# whose WHERE this one repeats.
_OPEN_EXPIRED = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE status IN ('pending', 'ready') AND expires <= ?1
ORDER BY expires LIMIT ?2"""  # noqa: S608
_CERTIFICATE_STATE = "SELECT status, order_id FROM certificates WHERE serial = ?"
# create_order's check of "replaces": the certificate, then the orders replacing it
# that are not invalid (a range of orders_replacing, whose WHERE this one repeats).
_REPLACED_BY = "SELECT replaced_by FROM certificates WHERE serial = ?"
_REPLACING = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE replaces = ? AND replaces IS NOT NULL AND status <> 'invalid'
ORDER BY created_at, id"""  # noqa: S608
# The order that became valid marks the certificate it replaces, once (RFC 9773 5).
_MARK_REPLACED = """
UPDATE certificates SET replaced_by = ? WHERE serial = ? AND replaced_by IS NULL"""


class OrderMethods(SqliteBase):
    async def create_order(
        self, order: Order, new_authorizations: Sequence[Authorization], *,
        pending_ceiling: int | None = None, spend: Spend | None = None,
    ) -> Order:
        guards.check_new_order(order, new_authorizations)
        values = order_row(order)
        authorizations = [authorization_row(authz) for authz in new_authorizations]
        challenges = [
            challenge_row(challenge)
            for authz in new_authorizations
            for challenge in authz.challenges
        ]
        links = [
            (order.id, authz_id, position)
            for position, authz_id in enumerate(order.authorization_ids)
        ]

        async def insert(conn: Connection) -> list[sqlite3.Row]:
            if pending_ceiling is not None and authorizations:  # the write lock is held
                (pending,) = await conn.execute_fetchall(
                    PENDING_COUNT, (order.account_id, to_text(order.created_at)))
                guards.check_pending_ceiling(pending["pending"], len(authorizations),
                                             pending_ceiling,
                                             optional_time(pending["first_expires"]))
            if order.replaces is not None:
                await _make_way(conn, order)
            if spend is not None:
                await spend_in(conn, spend, order.created_at)
            try:
                rows = list(await conn.execute_fetchall(_INSERT_ORDER, values))
            except sqlite3.IntegrityError as exc:
                if order.replaces is not None and "orders.replaces" in str(exc):
                    raise guards.already_replaced(order.replaces, "another") from None
                raise
            if authorizations:
                await conn.executemany(_INSERT_AUTHORIZATION, authorizations)
            if challenges:
                await conn.executemany(_INSERT_CHALLENGE, challenges)
            if links:
                await conn.executemany(_INSERT_LINK, links)
            return rows

        try:
            rows = await self._transaction(insert)
        except AlreadyReplaced:
            raise
        except Conflict as exc:
            raise Conflict(f"order {order.id}: an order, authorization or challenge with "
                           f"one of its ids already exists ({exc})") from None
        return to_order(rows[0], order.authorization_ids)

    async def get_order(self, order_id: str) -> Order:
        rows = await self._read(_BY_ID, (order_id,))
        if not rows:
            raise guards.not_found("order", order_id)
        return to_order(rows[0])

    async def list_account_orders(
        self, account_id: str, *, limit: int, after: str | None = None
    ) -> list[str]:
        guards.check_limit(limit)
        if after is None:
            rows = await self._read(_FIRST_PAGE, (account_id, limit))
        else:
            rows = await self._read(_NEXT_PAGE, (account_id, limit, after))
        return [row["id"] for row in rows]

    async def update_order_status(
        self,
        order_id: str,
        *,
        expected: OrderStatus,
        status: OrderStatus,
        error: str | None = None,
    ) -> Order:
        if status is OrderStatus.VALID:
            raise ValueError("an order becomes valid only with its certificate: finish_order")
        values = (status.value, error, order_id, expected.value)
        return to_order(await self._compare_and_set(SET_ORDER_STATUS, values, "order", order_id,
                                                    expected.value))

    async def finish_order(self, order_id: str, serial: str, der: bytes) -> Order:
        async def finish(conn: Connection) -> Order:
            issued = list(await conn.execute_fetchall(_ISSUE, (der, serial, order_id)))
            if not issued:
                state = list(await conn.execute_fetchall(_CERTIFICATE_STATE, (serial,)))
                found = tuple(state[0]) if state else None
                raise guards.certificate_refused(serial, found, order_id, stored=False)
            rows = list(await conn.execute_fetchall(_FINISH, (serial, order_id)))
            if rows:
                return await _replaced(conn, to_order(rows[0]))
            # Ended meanwhile (a sweeper): the certificate stays stored.
            rows = list(await conn.execute_fetchall(_BY_ID, (order_id,)))
            if not rows:  # raising rolls the certificate back to RESERVED
                raise guards.not_found("order", order_id)
            return to_order(rows[0])

        return await self._transaction(finish)

    async def complete_order(self, order_id: str, serial: str) -> Order:
        async def complete(conn: Connection) -> Order:
            rows = list(await conn.execute_fetchall(_COMPLETE, (serial, order_id)))
            if not rows:
                state = list(await conn.execute_fetchall(_CERTIFICATE_STATE, (serial,)))
                found = tuple(state[0]) if state else None
                cause = guards.certificate_refused(serial, found, order_id, stored=True)
                raise cause or await refusal(conn, "order", order_id, "processing")
            return await _replaced(conn, to_order(rows[0]))

        return await self._transaction(complete)

    async def orders_for_authorization(self, authorization_id: str) -> list[Order]:
        rows = await self._read(_FOR_AUTHORIZATION, (authorization_id,))
        return [to_order(row) for row in rows]

    async def expire_orders(self, now: datetime, *, limit: int) -> int:
        guards.check_limit(limit)

        def change(row: sqlite3.Row) -> tuple[str, str, str, str] | None:
            order = to_order(row)
            problem = states.expiry_problem(order, now)
            if problem is None:
                return None
            return OrderStatus.INVALID.value, problem.dumps(), order.id, order.status.value

        return await self._move_each(_OPEN_EXPIRED, (to_text(now), limit), change,
                                     SET_ORDER_STATUS)



async def _make_way(conn: Connection, order: Order) -> None:
    """Inside ``create_order``: ``NotFound`` if the certificate ``order.replaces`` names
    does not exist, ``AlreadyReplaced`` if an order replaced it or one not invalid is
    replacing it; an older replacing order that lapsed is moved to INVALID."""
    serial = order.replaces
    assert serial is not None
    found = list(await conn.execute_fetchall(_REPLACED_BY, (serial,)))
    if not found:
        raise guards.not_found("certificate", serial)
    if found[0]["replaced_by"] is not None:
        raise guards.already_replaced(serial, found[0]["replaced_by"])
    for row in await conn.execute_fetchall(_REPLACING, (serial,)):
        older = to_order(row)
        error = guards.lapsed_replacement(older, order.created_at)
        change = (OrderStatus.INVALID.value, error, older.id, older.status.value)
        if error is None or not await conn.execute_fetchall(SET_ORDER_STATUS, change):
            raise guards.already_replaced(serial, older.id)


async def _replaced(conn: Connection, order: Order) -> Order:
    """``order``, just made VALID; the certificate it replaces marked replaced by it."""
    if order.replaces is not None:
        await conn.execute_fetchall(_MARK_REPLACED, (order.id, order.replaces))
    return order
