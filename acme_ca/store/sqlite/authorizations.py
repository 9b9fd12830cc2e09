"""ACME authorizations and challenges in SQLite (RFC 8555 7.1.4, 7.1.6, 7.5).

An authorization is read with its challenges in one statement
(``AUTHORIZATION_COLUMNS``). ``record_validation`` settles a challenge, its
authorization and the orders waiting for it in one ``BEGIN IMMEDIATE`` transaction:
the statuses come from ``domain/states.py``, the SQL only guards each change. An
authorization no longer pending (settled by its other challenge, or deactivated) is
left as it is, with its orders: the challenge alone ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from acme_ca.domain import states
from acme_ca.domain.models import (
    Authorization,
    AuthorizationStatus,
    Challenge,
    ChallengeStatus,
    Identifier,
    Order,
    OrderStatus,
)
from acme_ca.store import guards
from acme_ca.store.sqlite.base import SqliteBase, optional_text, refusal, to_text
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.orders import SET_ORDER_STATUS
from acme_ca.store.sqlite.rows import (
    AUTHORIZATION_COLUMNS,
    ORDER_COLUMNS,
    identifier_keys,
    to_authorization,
    to_challenge,
    to_order,
)

_BY_ID = f"SELECT {AUTHORIZATION_COLUMNS} FROM authorizations WHERE id = ?"  # noqa: S608
# authorizations_for_reuse walked backwards: the latest expiry first, stop at one.
_REUSABLE = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations
WHERE account_id = ? AND identifier_value = ? AND status = 'valid' AND expires > ?
  AND identifier_type = ? AND wildcard = ?
ORDER BY expires DESC LIMIT 1"""  # noqa: S608
# The identifiers arrive as one JSON parameter, so the statement text is fixed.
_VALID = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations
WHERE account_id = ? AND status = 'valid' AND expires > ?
  AND (identifier_type, identifier_value, wildcard) IN (
      SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
             json_extract(value, '$[2]')
      FROM json_each(?))
ORDER BY identifier_value, expires DESC"""  # noqa: S608
_SET_AUTHORIZATION = f"""
UPDATE authorizations SET status = ?, expires = COALESCE(?, expires)
WHERE id = ? AND status = ?
RETURNING {AUTHORIZATION_COLUMNS}"""  # noqa: S608
_CHALLENGE = "SELECT * FROM challenges WHERE id = ?"
_SET_CHALLENGE = """
UPDATE challenges
SET status = ?, error = COALESCE(?, error), validated_at = COALESCE(?, validated_at),
    processing_since = COALESCE(?, processing_since)
WHERE id = ? AND status = ?
RETURNING *"""
# A range of the partial index challenges_processing (0005): only processing challenges,
# by processing_since, a NULL one (set processing without it) as '', the oldest.
_PROCESSING = """
SELECT * FROM challenges
WHERE status = 'processing' AND COALESCE(processing_since, '') <= ?1
ORDER BY COALESCE(processing_since, ''), rowid LIMIT ?2"""

# Open authorizations expired by ?1, the earliest first: a range of
# authorizations_open_by_expiry (0006), whose WHERE this one repeats.
_OPEN_EXPIRED = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations
WHERE status IN ('pending', 'valid') AND expires <= ?1
ORDER BY expires LIMIT ?2"""  # noqa: S608

# record_validation, in one transaction: the challenge and its authorization
# (_SET_CHALLENGE, _SET_AUTHORIZATION), then the pending orders listing that
# authorization, each with all its authorizations (for states.order_change).
_PENDING_ORDERS = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE status = 'pending'
  AND id IN (SELECT order_id FROM order_authorizations WHERE authorization_id = ?)"""  # noqa: S608
_LISTED = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations
WHERE id IN (SELECT authorization_id FROM order_authorizations WHERE order_id = ?)"""  # noqa: S608


class AuthorizationMethods(SqliteBase):
    async def get_authorization(self, authorization_id: str) -> Authorization:
        rows = await self._read(_BY_ID, (authorization_id,))
        if not rows:
            raise guards.not_found("authorization", authorization_id)
        return to_authorization(rows[0])

    async def order_authorizations(self, order_id: str) -> list[Authorization]:
        return [to_authorization(row) for row in await self._read(_LISTED, (order_id,))]

    async def find_reusable_authorization(
        self, account_id: str, identifier: Identifier, wildcard: bool, valid_after: datetime
    ) -> Authorization | None:
        values = (account_id, identifier.value, to_text(valid_after), identifier.type,
                  int(wildcard))
        rows = await self._read(_REUSABLE, values)
        return to_authorization(rows[0]) if rows else None

    async def valid_authorizations(
        self, account_id: str, identifiers: Sequence[Identifier], now: datetime
    ) -> list[Authorization]:
        if not identifiers:
            return []
        values = (account_id, to_text(now), identifier_keys(identifiers))
        return [to_authorization(row) for row in await self._read(_VALID, values)]

    async def update_authorization_status(
        self,
        authorization_id: str,
        *,
        expected: AuthorizationStatus,
        status: AuthorizationStatus,
        expires: datetime | None = None,
    ) -> Authorization:
        values = (status.value, optional_text(expires), authorization_id, expected.value)
        row = await self._compare_and_set(_SET_AUTHORIZATION, values, "authorization",
                                          authorization_id, expected.value)
        return to_authorization(row)

    async def get_challenge(self, challenge_id: str) -> Challenge:
        rows = await self._read(_CHALLENGE, (challenge_id,))
        if not rows:
            raise guards.not_found("challenge", challenge_id)
        return to_challenge(rows[0])

    async def update_challenge(
        self,
        challenge_id: str,
        *,
        expected: ChallengeStatus,
        status: ChallengeStatus,
        error: str | None = None,
        validated_at: datetime | None = None,
        processing_since: datetime | None = None,
    ) -> Challenge:
        values = (status.value, error, optional_text(validated_at),
                  optional_text(processing_since), challenge_id, expected.value)
        row = await self._compare_and_set(_SET_CHALLENGE, values, "challenge", challenge_id,
                                          expected.value)
        return to_challenge(row)

    async def record_validation(
        self,
        challenge_id: str,
        *,
        valid: bool,
        error: str | None,
        validated_at: datetime,
        authorization_expires: datetime | None,
    ) -> tuple[Challenge, Authorization]:
        outcome = states.settled(valid)
        challenge_values = (outcome.challenge.value, error, to_text(validated_at), None,
                            challenge_id, ChallengeStatus.PROCESSING.value)
        expires = optional_text(authorization_expires)
        pending = AuthorizationStatus.PENDING.value

        async def settle(conn: Connection) -> Authorization:
            rows = list(await conn.execute_fetchall(_SET_CHALLENGE, challenge_values))
            if not rows:
                raise await refusal(conn, "challenge", challenge_id, "processing")
            authorization_id = rows[0]["authorization_id"]
            rows = list(await conn.execute_fetchall(_SET_AUTHORIZATION, (
                outcome.authorization.value, expires, authorization_id, pending)))
            if not rows:  # settled or deactivated meanwhile: it and its orders stay so
                return to_authorization(
                    (await conn.execute_fetchall(_BY_ID, (authorization_id,)))[0])
            for order_row in await conn.execute_fetchall(_PENDING_ORDERS, (authorization_id,)):
                await _settle_order(conn, to_order(order_row), validated_at)
            return to_authorization(rows[0])

        authz = await self._transaction(settle)
        challenge = next(c for c in authz.challenges if c.id == challenge_id)
        return challenge, authz

    async def processing_challenges(
        self, started_before: datetime, *, limit: int
    ) -> list[Challenge]:
        guards.check_limit(limit)
        rows = await self._read(_PROCESSING, (to_text(started_before), limit))
        return [to_challenge(row) for row in rows]

    async def expire_authorizations(self, now: datetime, *, limit: int) -> int:
        guards.check_limit(limit)

        def change(row: sqlite3.Row) -> tuple[str, None, str, str] | None:
            authz = to_authorization(row)
            status = states.authorization_status(authz, now)
            if status is authz.status:
                return None
            return status.value, None, authz.id, authz.status.value

        return await self._move_each(_OPEN_EXPIRED, (to_text(now), limit), change,
                                     _SET_AUTHORIZATION)


async def _settle_order(conn: Connection, order: Order, now: datetime) -> None:
    """Inside ``record_validation``: what ``states.order_change`` makes of a pending
    ``order`` given all its authorizations as they now are, set by compare-and-set."""
    listed = [to_authorization(row)
              for row in await conn.execute_fetchall(_LISTED, (order.id,))]
    change = states.order_change(order, listed, now)
    if change is None:
        return
    values = (change.status.value, change.error, order.id, OrderStatus.PENDING.value)
    if not list(await conn.execute_fetchall(SET_ORDER_STATUS, values)):
        raise await refusal(conn, "order", order.id, OrderStatus.PENDING.value)
