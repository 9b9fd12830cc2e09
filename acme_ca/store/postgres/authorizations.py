"""ACME authorizations and challenges in PostgreSQL (RFC 8555 7.1.4, 7.1.6, 7.5).

An authorization is read with its challenges in one statement
(``rows.AUTHORIZATION_COLUMNS``). ``record_validation`` settles a challenge, its
authorization and the orders waiting for it in one transaction, READ COMMITTED:

1. the challenge PROCESSING -> VALID|INVALID and its authorization PENDING ->
   VALID|INVALID, two compare-and-sets (the second locks the authorization row); an
   authorization no longer pending (its other challenge won, or the client
   deactivated it) is left as it is, with its orders, and the transaction ends here;
2. the pending orders listing that authorization are locked (``FOR NO KEY UPDATE``, the
   lock an UPDATE takes, ordered by id so that two validations never deadlock);
3. only then are their authorizations read, in a new statement: it sees every
   validation committed before the locks were granted. Of two authorizations of one
   order validated at the same moment, the second to lock the order therefore sees
   the first one valid, and makes the order ready;
4. ``domain.states.order_change`` decides what each order becomes, and a
   compare-and-set on its status (which cannot lose: the row is locked) records it.

``expire_authorizations`` locks a batch of open authorizations past their expiry,
skipping those another transaction holds (a second expirer, a validation settling
one: it waits for none, so it takes part in no deadlock), has
``domain.states.authorization_status`` say what each now is, and moves them in one
compare-and-set statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from acme_ca.domain import states
from acme_ca.domain.models import (
    Authorization,
    AuthorizationStatus,
    Challenge,
    ChallengeStatus,
    Identifier,
)
from acme_ca.errors import StoreError
from acme_ca.store import guards
from acme_ca.store.postgres.base import Connection, PostgresBase, Record, aware, optional_aware
from acme_ca.store.postgres.orders import SET_STATUS
from acme_ca.store.postgres.rows import (
    AUTHORIZATION_COLUMNS,
    ORDER_COLUMNS,
    identifier_keys,
    to_authorization,
    to_challenge,
    to_order,
)

_BY_ID = f"SELECT {AUTHORIZATION_COLUMNS} FROM authorizations WHERE id = $1"  # noqa: S608
_BY_IDS = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations WHERE id = ANY($1::text[])"""  # noqa: S608
_LISTED = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations
WHERE id IN (SELECT authorization_id FROM order_authorizations WHERE order_id = $1)"""  # noqa: S608
# authorizations_for_reuse walked backwards: the latest expiry first, stop at one.
_REUSABLE = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations
WHERE account_id = $1 AND identifier_value = $2 AND status = 'valid' AND expires > $3
  AND identifier_type = $4 AND wildcard = $5
ORDER BY expires DESC LIMIT 1"""  # noqa: S608
_VALID = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations
WHERE account_id = $1 AND status = 'valid' AND expires > $2
  AND (identifier_type, identifier_value, wildcard) IN (
      SELECT * FROM unnest($3::text[], $4::text[], $5::boolean[]))
ORDER BY identifier_value, expires DESC"""  # noqa: S608
_SET_AUTHORIZATION = f"""
UPDATE authorizations SET status = $3, expires = COALESCE($4, expires)
WHERE id = $1 AND status = $2
RETURNING {AUTHORIZATION_COLUMNS}"""  # noqa: S608
_AUTHORIZATION_STATUS = "SELECT status FROM authorizations WHERE id = $1"

_CHALLENGE = "SELECT * FROM challenges WHERE id = $1"
_SET_CHALLENGE = """
UPDATE challenges SET status = $3, error = COALESCE($4, error),
    validated_at = COALESCE($5, validated_at), processing_since = COALESCE($6, processing_since)
WHERE id = $1 AND status = $2
RETURNING *"""
_CHALLENGE_STATUS = "SELECT status FROM challenges WHERE id = $1"
# Through the partial index challenges_processing, in its order: no processing_since
# (rows from before migration 0005) first, as processing forever.
_PROCESSING = """
SELECT * FROM challenges
WHERE status = 'processing' AND (processing_since IS NULL OR processing_since <= $1)
ORDER BY processing_since NULLS FIRST, id LIMIT $2"""

# record_validation, in one transaction:
_SETTLE_CHALLENGE = """
UPDATE challenges
SET status = $2, error = COALESCE($3, error), validated_at = COALESCE($4, validated_at)
WHERE id = $1 AND status = 'processing'
RETURNING authorization_id"""
_LOCK_PENDING_ORDERS = f"""
SELECT {ORDER_COLUMNS} FROM orders
WHERE status = 'pending'
  AND id IN (SELECT order_id FROM order_authorizations WHERE authorization_id = $1)
ORDER BY id
FOR NO KEY UPDATE OF orders"""  # noqa: S608
# Open authorizations expired by $1, the earliest first: a range of
# authorizations_open_by_expiry (0006).
_LOCK_OPEN_EXPIRED = f"""
SELECT {AUTHORIZATION_COLUMNS} FROM authorizations
WHERE status IN ('pending', 'valid') AND expires <= $1
ORDER BY expires, id LIMIT $2
FOR NO KEY UPDATE OF authorizations SKIP LOCKED"""  # noqa: S608
# Every (id, expected, status) a compare-and-set, in one statement.
_SET_STATUSES = """
UPDATE authorizations SET status = changed.status
FROM unnest($1::text[], $2::text[], $3::text[]) AS changed (id, expected, status)
WHERE authorizations.id = changed.id AND authorizations.status = changed.expected"""


class AuthorizationMethods(PostgresBase):
    async def get_authorization(self, authorization_id: str) -> Authorization:
        rows = await self._lookup(_BY_ID, authorization_id)
        if not rows:
            raise guards.not_found("authorization", authorization_id)
        return to_authorization(rows[0])

    async def order_authorizations(self, order_id: str) -> list[Authorization]:
        return [to_authorization(row) for row in await self._lookup(_LISTED, order_id)]

    async def find_reusable_authorization(
        self, account_id: str, identifier: Identifier, wildcard: bool, valid_after: datetime
    ) -> Authorization | None:
        rows = await self._read(_REUSABLE, account_id, identifier.value, aware(valid_after),
                                identifier.type, wildcard)
        return to_authorization(rows[0]) if rows else None

    async def valid_authorizations(
        self, account_id: str, identifiers: Sequence[Identifier], now: datetime
    ) -> list[Authorization]:
        if not identifiers:
            return []
        rows = await self._read(_VALID, account_id, aware(now), *identifier_keys(identifiers))
        return [to_authorization(row) for row in rows]

    async def update_authorization_status(
        self,
        authorization_id: str,
        *,
        expected: AuthorizationStatus,
        status: AuthorizationStatus,
        expires: datetime | None = None,
    ) -> Authorization:
        args = (authorization_id, expected.value, status.value, optional_aware(expires))
        return to_authorization(await self._compare_and_set(
            _SET_AUTHORIZATION, args, state=_AUTHORIZATION_STATUS, kind="authorization",
            row_id=authorization_id, expected=expected.value))

    async def get_challenge(self, challenge_id: str) -> Challenge:
        rows = await self._lookup(_CHALLENGE, challenge_id)
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
        args = (challenge_id, expected.value, status.value, error,
                optional_aware(validated_at), optional_aware(processing_since))
        return to_challenge(await self._compare_and_set(
            _SET_CHALLENGE, args, state=_CHALLENGE_STATUS, kind="challenge",
            row_id=challenge_id, expected=expected.value))

    async def processing_challenges(
        self, started_before: datetime, *, limit: int
    ) -> list[Challenge]:
        guards.check_limit(limit)
        rows = await self._read(_PROCESSING, aware(started_before), limit)
        return [to_challenge(row) for row in rows]

    async def expire_authorizations(self, now: datetime, *, limit: int) -> int:
        guards.check_limit(limit)

        def change(row: Record) -> tuple[str, str, str] | None:
            authz = to_authorization(row)
            status = states.authorization_status(authz, now)
            return None if status is authz.status else (authz.id, authz.status.value,
                                                         status.value)

        return await self._move_all(_LOCK_OPEN_EXPIRED, (aware(now), limit), change,
                                    _SET_STATUSES)

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
        now, expires = aware(validated_at), optional_aware(authorization_expires)

        async def settle(conn: Connection) -> Authorization:
            authorization_id = await conn.fetchval(
                _SETTLE_CHALLENGE, challenge_id, outcome.challenge.value, error, now)
            if authorization_id is None:
                found = await conn.fetchval(_CHALLENGE_STATUS, challenge_id)
                raise guards.refused("challenge", challenge_id, found,
                                     ChallengeStatus.PROCESSING.value)
            row = await conn.fetchrow(_SET_AUTHORIZATION, authorization_id,
                                      AuthorizationStatus.PENDING.value,
                                      outcome.authorization.value, expires)
            if row is None:  # settled or deactivated meanwhile: it and its orders stay so
                return to_authorization(await conn.fetchrow(_BY_ID, authorization_id))
            await _settle_orders(conn, authorization_id, now)
            return to_authorization(row)

        authz = await self._transaction(settle)
        challenge = next(c for c in authz.challenges if c.id == challenge_id)
        return challenge, authz


async def _settle_orders(conn: Connection, authorization_id: str, now: datetime) -> None:
    """Steps 2 to 4 of the module docstring, for the orders listing the authorization."""
    orders = [to_order(row) for row in await conn.fetch(_LOCK_PENDING_ORDERS, authorization_id)]
    if not orders:
        return
    wanted = sorted({authz_id for order in orders for authz_id in order.authorization_ids})
    found = [to_authorization(row) for row in await conn.fetch(_BY_IDS, wanted)]
    for order in orders:
        change = states.order_change(order, found, now)
        if change is None:
            continue
        row = await conn.fetchrow(SET_STATUS, order.id, order.status.value,
                                  change.status.value, change.error)
        if row is None:  # the row is locked: nobody else can have changed it
            raise StoreError(f"order {order.id} changed while locked")
