"""ACME orders in PostgreSQL (RFC 8555 7.1.3, 7.4), and the issuance of their
certificates.

``create_order``, ``start_issuance``, ``finish_order``, ``complete_order`` and
``expire_orders`` are one transaction each; the others one statement. An order is read
with its authorization ids in one statement (``rows.ORDER_COLUMNS``).

``expire_orders`` locks a batch of open orders past their expiry, skipping those
another transaction holds (a second expirer, a validation settling them: it waits for
none, so it never takes part in a deadlock), has ``domain.states.expiry_problem`` say
why each is invalid, and moves them all in one compare-and-set statement.

An order that ``replaces`` a certificate (RFC 9773 5): ``create_order`` locks the
certificate's row (``FOR NO KEY UPDATE``: the orders' foreign key to it takes FOR KEY
SHARE, which it allows, and a second lock of this kind waits) after the account's and
before a rate limit's bucket, then reads the orders replacing it in a later statement,
which sees every order committed before the lock was granted: of two orders replacing
one certificate the second waits and finds the first (``guards.already_replaced``).
The partial unique index ``orders_replacing`` would refuse it anyway, and its violation
is ``AlreadyReplaced`` too. An older replacing order that lapsed (open, past its expiry)
is moved to INVALID by a compare-and-set in that transaction, which skips the order
if another transaction holds it (``SKIP LOCKED``): that order is changing (a finalize,
a validation), so it stands in the way, and ``create_order`` never waits for an order
while it holds the certificate. The order that becomes VALID marks the certificate it
replaces (``certificates.replaced_by``) in the same transaction, locking the order
before the certificate: without the skip, the two would wait for each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NoReturn

import asyncpg

from acme_ca.domain import states
from acme_ca.domain.limits import Spend
from acme_ca.domain.models import (
    Authorization,
    CertificateRecord,
    Order,
    OrderStatus,
)
from acme_ca.errors import AlreadyReplaced, Conflict, StoreError
from acme_ca.store import guards
from acme_ca.store.postgres.base import Connection, PostgresBase, Record, aware
from acme_ca.store.postgres.certificates import RESERVE
from acme_ca.store.postgres.limits import PENDING_COUNT, spend_in
from acme_ca.store.postgres.rows import (
    AUTHORIZATION_INSERT,
    CHALLENGE_INSERT,
    LINK_INSERT,
    ORDER_COLUMNS,
    ORDER_INSERT,
    authorization_row,
    certificate_row,
    challenge_rows,
    link_rows,
    order_row,
    to_certificate,
    to_order,
)

BY_ID = f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"  # noqa: S608
_ORDER_INSERTED = ORDER_INSERT + "\nRETURNING *"  # the order as stored, in one round trip
_FOR_AUTHORIZATION = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE id IN (SELECT order_id FROM order_authorizations WHERE authorization_id = $1)
ORDER BY created_at, id"""  # noqa: S608
# Keyset pagination on (created_at, id), both in orders_by_account. An `after` that
# is not one of this account's orders makes the subquery NULL: an empty page.
_FIRST_PAGE = "SELECT id FROM orders WHERE account_id = $1 ORDER BY created_at, id LIMIT $2"
_NEXT_PAGE = """
SELECT id FROM orders
WHERE account_id = $1
  AND (created_at, id) > (SELECT created_at, id FROM orders WHERE id = $3 AND account_id = $1)
ORDER BY created_at, id LIMIT $2"""
SET_STATUS = f"""
UPDATE orders SET status = $3, error = COALESCE($4, error)
WHERE id = $1 AND status = $2
RETURNING {ORDER_COLUMNS}"""  # noqa: S608
_STATUS = "SELECT status FROM orders WHERE id = $1"
_ISSUE = """
UPDATE certificates SET status = 'issued', der = $3
WHERE serial = $1 AND status = 'reserved' AND order_id = $2
RETURNING serial"""
_FINISH = f"""
UPDATE orders SET status = 'valid', certificate_serial = $2
WHERE id = $1 AND status = 'processing'
RETURNING {ORDER_COLUMNS}"""  # noqa: S608
# PROCESSING -> VALID onto the certificate already stored for the order (a sweeper's move).
_COMPLETE = f"""
UPDATE orders SET status = 'valid', certificate_serial = $2
WHERE id = $1 AND status = 'processing' AND EXISTS (
    SELECT 1 FROM certificates
    WHERE serial = $2 AND order_id = $1 AND status IN ('issued', 'revoked'))
RETURNING {ORDER_COLUMNS}"""  # noqa: S608
_CERTIFICATE_STATE = "SELECT status, order_id FROM certificates WHERE serial = $1"
# Orders PROCESSING since $1 or earlier: since the reservation of their latest serial
# (start_issuance), or since their creation when no serial names them. Found through
# the partial index orders_processing, their serials through certificates_by_order.
_PROCESSING_SINCE = f"""
SELECT {ORDER_COLUMNS}, issued.serial AS issuance_serial
FROM orders LEFT JOIN LATERAL (
    SELECT serial, created_at FROM certificates WHERE order_id = orders.id
    ORDER BY created_at DESC, serial DESC LIMIT 1
) AS issued ON true
WHERE orders.status = 'processing' AND COALESCE(issued.created_at, orders.created_at) <= $1
ORDER BY orders.created_at, orders.id LIMIT $2"""  # noqa: S608
_CERTIFICATES = "SELECT * FROM certificates WHERE serial = ANY($1::text[])"
# Open orders expired by $1, the earliest first: a range of orders_open_by_expiry (0006).
_LOCK_OPEN_EXPIRED = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE status IN ('pending', 'ready') AND expires <= $1
ORDER BY expires, id LIMIT $2
FOR NO KEY UPDATE OF orders SKIP LOCKED"""  # noqa: S608
# Every (id, expected, status, error) a compare-and-set, in one statement.
_SET_STATUSES = """
UPDATE orders SET status = changed.status, error = changed.error
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
    AS changed (id, expected, status, error)
WHERE orders.id = changed.id AND orders.status = changed.expected"""


# Not FOR UPDATE: the authorizations' foreign keys take FOR KEY SHARE, which it allows.
_LOCK_ACCOUNT = "SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE"
# create_order's check of "replaces": the certificate locked (the module docstring),
# then the orders replacing it that are not invalid (a range of orders_replacing).
_LOCK_REPLACED = """
SELECT replaced_by FROM certificates WHERE serial = $1 FOR NO KEY UPDATE"""
_REPLACING = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE replaces = $1 AND status <> 'invalid'
ORDER BY created_at, id"""  # noqa: S608
# A lapsed replacing order (id, expected, error) made invalid, unless another
# transaction holds it (the module docstring).
_LAPSE = """
UPDATE orders SET status = 'invalid', error = $3
WHERE id = (SELECT id FROM orders WHERE id = $1 AND status = $2
            FOR NO KEY UPDATE SKIP LOCKED)
RETURNING id"""
# The order that became valid marks the certificate it replaces, once (RFC 9773 5).
_MARK_REPLACED = """
UPDATE certificates SET replaced_by = $1 WHERE serial = $2 AND replaced_by IS NULL"""


class OrderMethods(PostgresBase):
    async def create_order(
        self, order: Order, new_authorizations: Sequence[Authorization], *,
        pending_ceiling: int | None = None, spend: Spend | None = None,
    ) -> Order:
        guards.check_new_order(order, new_authorizations)
        values = order_row(order)
        authorizations = [authorization_row(authz) for authz in new_authorizations]
        challenges = challenge_rows(new_authorizations)
        links = link_rows(order)

        async def insert(conn: Connection) -> Order:
            if pending_ceiling is not None and authorizations:
                # The account's row locked first: two orders of one account serialise
                # here, and the count (a statement after the lock) sees the other's.
                await conn.execute(_LOCK_ACCOUNT, order.account_id)
                pending = await conn.fetchrow(PENDING_COUNT, order.account_id,
                                              aware(order.created_at))
                guards.check_pending_ceiling(pending["pending"], len(authorizations),
                                             pending_ceiling, pending["first_expires"])
            if order.replaces is not None:  # after the account's row, before the bucket's
                await _make_way(conn, order)
            if spend is not None:  # its bucket's row locked last (limits.spend_in)
                await spend_in(conn, spend, aware(order.created_at))
            try:
                inserted = await conn.fetchrow(_ORDER_INSERTED, *values)
            except asyncpg.UniqueViolationError as exc:
                if order.replaces is not None and exc.constraint_name == "orders_replacing":
                    raise guards.already_replaced(order.replaces, "another") from None
                raise
            for sql, rows in ((AUTHORIZATION_INSERT, authorizations),
                              (CHALLENGE_INSERT, challenges), (LINK_INSERT, links)):
                if rows:
                    await conn.executemany(sql, rows)
            return to_order(inserted, order.authorization_ids)  # as they were just linked

        try:
            return await self._transaction(insert)
        except AlreadyReplaced:
            raise
        except Conflict as exc:
            raise Conflict(f"order {order.id}: an order, authorization or challenge with "
                           f"one of its ids already exists ({exc})") from None

    async def get_order(self, order_id: str) -> Order:
        rows = await self._lookup(BY_ID, order_id)
        if not rows:
            raise guards.not_found("order", order_id)
        return to_order(rows[0])

    async def list_account_orders(
        self, account_id: str, *, limit: int, after: str | None = None
    ) -> list[str]:
        guards.check_limit(limit)
        if after is None:
            rows = await self._lookup(_FIRST_PAGE, account_id, limit)
        else:
            rows = await self._lookup(_NEXT_PAGE, account_id, limit, after)
        return [row["id"] for row in rows]

    async def orders_for_authorization(self, authorization_id: str) -> list[Order]:
        rows = await self._lookup(_FOR_AUTHORIZATION, authorization_id)
        return [to_order(row) for row in rows]

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
        return to_order(await self._compare_and_set(
            SET_STATUS, (order_id, expected.value, status.value, error), state=_STATUS,
            kind="order", row_id=order_id, expected=expected.value))

    async def start_issuance(self, order_id: str, record: CertificateRecord, *,
                             spend: Spend | None = None) -> Order:
        guards.check_reservation(record, order_id)
        values = certificate_row(record)
        change = (order_id, OrderStatus.READY.value, OrderStatus.PROCESSING.value, None)

        async def start(conn: Connection) -> Order:
            row = await conn.fetchrow(SET_STATUS, *change)
            if row is None:
                await _refuse_order_change(conn, order_id, OrderStatus.READY.value)
            if spend is not None:  # after the order's row: its bucket's row locked last
                await spend_in(conn, spend, aware(record.created_at))
            if await conn.fetchval(RESERVE, *values) is None:  # the order stays READY
                raise StoreError(f"certificate serial {record.serial} already exists")
            return to_order(row)

        return await self._transaction(start)

    async def finish_order(self, order_id: str, serial: str, der: bytes) -> Order:
        async def finish(conn: Connection) -> Order:
            if await conn.fetchval(_ISSUE, serial, order_id, der) is None:
                state = await conn.fetchrow(_CERTIFICATE_STATE, serial)
                found = None if state is None else tuple(state)
                raise guards.certificate_refused(serial, found, order_id, stored=False)
            row = await conn.fetchrow(_FINISH, order_id, serial)
            if row is not None:
                return await _replaced(conn, to_order(row))
            # Ended meanwhile (a sweeper): the certificate stays stored.
            row = await conn.fetchrow(BY_ID, order_id)
            if row is None:  # raising rolls the certificate back to RESERVED
                raise guards.not_found("order", order_id)
            return to_order(row)

        return await self._transaction(finish)

    async def complete_order(self, order_id: str, serial: str) -> Order:
        async def complete(conn: Connection) -> Order:
            row = await conn.fetchrow(_COMPLETE, order_id, serial)
            if row is None:
                state = await conn.fetchrow(_CERTIFICATE_STATE, serial)
                found = None if state is None else tuple(state)
                cause = guards.certificate_refused(serial, found, order_id, stored=True)
                if cause is not None:
                    raise cause
                await _refuse_order_change(conn, order_id, OrderStatus.PROCESSING.value)
            return await _replaced(conn, to_order(row))

        return await self._transaction(complete)

    async def processing_orders(
        self, started_before: datetime, *, limit: int
    ) -> list[tuple[Order, CertificateRecord | None]]:
        guards.check_limit(limit)
        rows = await self._read(_PROCESSING_SINCE, aware(started_before), limit)
        serials = [row["issuance_serial"] for row in rows if row["issuance_serial"]]
        records = {}
        if serials:
            found = await self._read(_CERTIFICATES, serials)
            records = {row["serial"]: to_certificate(row) for row in found}
        return [(to_order(row), records.get(row["issuance_serial"])) for row in rows]

    async def expire_orders(self, now: datetime, *, limit: int) -> int:
        guards.check_limit(limit)

        def change(row: Record) -> tuple[str, str, str, str] | None:
            order = to_order(row)
            problem = states.expiry_problem(order, now)
            if problem is None:
                return None
            return order.id, order.status.value, OrderStatus.INVALID.value, problem.dumps()

        return await self._move_all(_LOCK_OPEN_EXPIRED, (aware(now), limit), change,
                                    _SET_STATUSES)


async def _refuse_order_change(conn: Connection, order_id: str, expected: str) -> NoReturn:
    """After a compare-and-set on the order changed nothing, inside its transaction."""
    raise guards.refused("order", order_id, await conn.fetchval(_STATUS, order_id), expected)


async def _make_way(conn: Connection, order: Order) -> None:
    """Inside ``create_order``: lock the certificate ``order.replaces`` names;
    ``NotFound`` if there is none, ``AlreadyReplaced`` if an order replaced it or one not
    invalid is replacing it; an older replacing order that lapsed is moved to INVALID."""
    serial = order.replaces
    assert serial is not None
    found = None if "\x00" in serial else await conn.fetchrow(_LOCK_REPLACED, serial)
    if found is None:
        raise guards.not_found("certificate", serial)
    if found["replaced_by"] is not None:
        raise guards.already_replaced(serial, found["replaced_by"])
    for row in await conn.fetch(_REPLACING, serial):
        older = to_order(row)
        error = guards.lapsed_replacement(older, order.created_at)
        if error is None or await conn.fetchval(_LAPSE, older.id, older.status.value,
                                                 error) is None:
            raise guards.already_replaced(serial, older.id)


async def _replaced(conn: Connection, order: Order) -> Order:
    """``order``, just made VALID; the certificate it replaces marked replaced by it."""
    if order.replaces is not None:
        await conn.execute(_MARK_REPLACED, order.id, order.replaces)
    return order
