"""ACME authorizations and challenges in SQLite (RFC 8555 7.1.4, 7.1.6, 7.5).

An authorization is read with its challenges in one statement
(``AUTHORIZATION_COLUMNS``). ``record_validation`` settles a challenge, its
authorization and the orders waiting for it in one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from acme_ca.domain.models import (
    Authorization,
    AuthorizationStatus,
    Challenge,
    ChallengeStatus,
    Identifier,
)
from acme_ca.errors import Conflict, NotFound
from acme_ca.store.sqlite.base import SqliteBase, optional_text, to_text
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.rows import (
    AUTHORIZATION_COLUMNS,
    identifier_keys,
    to_authorization,
    to_challenge,
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
_AUTHORIZATION_STATUS = "SELECT status FROM authorizations WHERE id = ?"

_CHALLENGE = "SELECT * FROM challenges WHERE id = ?"
_SET_CHALLENGE = """
UPDATE challenges
SET status = ?, error = COALESCE(?, error), validated_at = COALESCE(?, validated_at)
WHERE id = ? AND status = ?
RETURNING *"""
_CHALLENGE_STATUS = "SELECT status FROM challenges WHERE id = ?"
# The literal 'processing' lets SQLite use the partial index challenges_processing.
_PROCESSING = "SELECT * FROM challenges WHERE status = 'processing' ORDER BY rowid"

# record_validation, in one transaction:
_SETTLE_CHALLENGE = """
UPDATE challenges SET status = ?, error = ?, validated_at = ?
WHERE id = ? AND status = 'processing'
RETURNING authorization_id"""
_SETTLE_AUTHORIZATION = f"""
UPDATE authorizations SET status = ?, expires = COALESCE(?, expires)
WHERE id = ? AND status = 'pending'
RETURNING {AUTHORIZATION_COLUMNS}"""  # noqa: S608
_ORDERS_READY = """
UPDATE orders SET status = 'ready'
WHERE status = 'pending'
  AND id IN (SELECT order_id FROM order_authorizations WHERE authorization_id = ?)
  AND NOT EXISTS (
      SELECT 1 FROM order_authorizations AS listed
      JOIN authorizations AS authz ON authz.id = listed.authorization_id
      WHERE listed.order_id = orders.id AND authz.status <> 'valid')"""
_ORDERS_INVALID = """
UPDATE orders SET status = 'invalid', error = ?
WHERE status = 'pending'
  AND id IN (SELECT order_id FROM order_authorizations WHERE authorization_id = ?)"""


class AuthorizationMethods(SqliteBase):
    async def get_authorization(self, authorization_id: str) -> Authorization:
        rows = await self._read(_BY_ID, (authorization_id,))
        if not rows:
            raise NotFound(f"no authorization {authorization_id}")
        return to_authorization(rows[0])

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
        rows = await self._write(_SET_AUTHORIZATION, values)
        if not rows:
            found = await self._status(_AUTHORIZATION_STATUS, "authorization", authorization_id)
            raise Conflict(f"authorization {authorization_id} is {found}, not {expected}")
        return to_authorization(rows[0])

    async def get_challenge(self, challenge_id: str) -> Challenge:
        rows = await self._read(_CHALLENGE, (challenge_id,))
        if not rows:
            raise NotFound(f"no challenge {challenge_id}")
        return to_challenge(rows[0])

    async def update_challenge(
        self,
        challenge_id: str,
        *,
        expected: ChallengeStatus,
        status: ChallengeStatus,
        error: str | None = None,
        validated_at: datetime | None = None,
    ) -> Challenge:
        values = (status.value, error, optional_text(validated_at), challenge_id, expected.value)
        rows = await self._write(_SET_CHALLENGE, values)
        if not rows:
            found = await self._status(_CHALLENGE_STATUS, "challenge", challenge_id)
            raise Conflict(f"challenge {challenge_id} is {found}, not {expected}")
        return to_challenge(rows[0])

    async def record_validation(
        self,
        challenge_id: str,
        *,
        valid: bool,
        error: str | None,
        validated_at: datetime,
        authorization_expires: datetime | None,
    ) -> tuple[Challenge, Authorization]:
        if valid:
            settled = (ChallengeStatus.VALID.value, AuthorizationStatus.VALID.value)
        else:
            settled = (ChallengeStatus.INVALID.value, AuthorizationStatus.INVALID.value)
        challenge_values = (settled[0], error, to_text(validated_at), challenge_id)
        expires = optional_text(authorization_expires)

        async def settle(conn: Connection) -> list[sqlite3.Row]:
            rows = list(await conn.execute_fetchall(_SETTLE_CHALLENGE, challenge_values))
            if not rows:
                found = list(await conn.execute_fetchall(_CHALLENGE_STATUS, (challenge_id,)))
                if not found:
                    raise NotFound(f"no challenge {challenge_id}")
                raise Conflict(f"challenge {challenge_id} is {found[0]['status']}, "
                               "not processing")
            authorization_id = rows[0]["authorization_id"]
            rows = list(await conn.execute_fetchall(
                _SETTLE_AUTHORIZATION, (settled[1], expires, authorization_id)))
            if not rows:  # raising rolls the challenge back to PROCESSING
                found = list(await conn.execute_fetchall(
                    _AUTHORIZATION_STATUS, (authorization_id,)))
                raise Conflict(f"authorization {authorization_id} is {found[0]['status']}, "
                               "not pending")
            if valid:
                await conn.execute_fetchall(_ORDERS_READY, (authorization_id,))
            else:
                await conn.execute_fetchall(_ORDERS_INVALID, (error, authorization_id))
            return rows

        rows = await self._transaction(settle)
        authz = to_authorization(rows[0])
        challenge = next(c for c in authz.challenges if c.id == challenge_id)
        return challenge, authz

    async def processing_challenges(self) -> list[Challenge]:
        return [to_challenge(row) for row in await self._read(_PROCESSING)]

    async def _status(self, sql: str, what: str, row_id: str) -> str:
        """The status of a row a compare-and-set did not change; ``NotFound`` if none."""
        rows = await self._read(sql, (row_id,))
        if not rows:
            raise NotFound(f"no {what} {row_id}")
        return str(rows[0]["status"])
