"""Authorizations and challenges (RFC 8555 7.5): read, respond to a challenge, deactivate."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from acme_ca.authority.limits import RateLimits
from acme_ca.authority.supervisor import ValidationSupervisor
from acme_ca.clock import Clock
from acme_ca.domain.models import (
    Account,
    Authorization,
    AuthorizationStatus,
    Challenge,
    ChallengeStatus,
)
from acme_ca.domain.problems import malformed, unauthorized
from acme_ca.domain.states import USABLE_AUTHORIZATION, authorization_status
from acme_ca.errors import Conflict, NotFound
from acme_ca.store.base import Store

# How long a challenge POST waits for its validation before answering "processing".
ANSWER_WITHIN = 0.5


class AuthorizationService:
    def __init__(self, store: Store, clock: Clock, supervisor: ValidationSupervisor,
                 limits: RateLimits | None = None) -> None:
        self._store = store
        self._clock = clock
        self._supervisor = supervisor
        self._limits = limits or RateLimits(store, clock)

    async def get(self, account: Account, authz_id: str) -> Authorization:
        try:
            authz = await self._store.get_authorization(authz_id)
        except NotFound:
            raise malformed("no such authorization", status=404) from None
        if authz.account_id != account.id:
            raise unauthorized("this authorization belongs to another account")
        status = authorization_status(authz, self._clock.now())  # expiry: time, not a write
        return authz if status is authz.status else replace(authz, status=status)

    async def deactivate(
        self, account: Account, authz_id: str, payload: dict[str, Any]
    ) -> Authorization:
        """7.5.2: {"status": "deactivated"} on a pending or valid authorization."""
        if payload.get("status") != AuthorizationStatus.DEACTIVATED.value:
            raise malformed('the only change a client may make is {"status": "deactivated"}')
        authz = await self.get(account, authz_id)
        if authz.status not in USABLE_AUTHORIZATION:
            raise malformed(f"an authorization that is {authz.status.value} cannot be deactivated")
        try:
            return await self._store.update_authorization_status(
                authz.id, expected=authz.status, status=AuthorizationStatus.DEACTIVATED
            )
        except Conflict:
            return await self.deactivate(account, authz_id, payload)

    async def get_challenge(self, account: Account, challenge_id: str) -> Challenge:
        challenge = await self._challenge(challenge_id)
        await self.get(account, challenge.authorization_id)  # ownership
        return challenge

    async def _challenge(self, challenge_id: str) -> Challenge:
        try:
            return await self._store.get_challenge(challenge_id)
        except NotFound:
            raise malformed("no such challenge", status=404) from None

    async def respond(self, account: Account, challenge_id: str) -> Challenge:
        """7.5.1: the client is ready; validate in the background, and answer as soon as
        the validation is done or ANSWER_WITHIN has passed, whichever comes first;
        rateLimited (the challenge left pending) when the account's failed validations
        of the name are over their limit.

        On a local network a validation takes milliseconds, so the client usually gets
        the final state in this very response and need not poll (as Caddy's server
        does); a slow one is answered "processing" with Retry-After and goes on."""
        challenge = await self._challenge(challenge_id)
        authz = await self.get(account, challenge.authorization_id)
        if (
            challenge.status is not ChallengeStatus.PENDING
            or authz.status is not AuthorizationStatus.PENDING
        ):
            return challenge
        # Failed validations again (6.6): orders opened first must not validate it anew.
        await self._limits.challenge_answered(account, authz.identifier)  # stays pending
        try:
            challenge = await self._store.update_challenge(
                challenge.id, expected=ChallengeStatus.PENDING, status=ChallengeStatus.PROCESSING,
                processing_since=self._clock.now(),
            )
        except Conflict:
            return await self._store.get_challenge(challenge.id)
        task = self._supervisor.submit(challenge.id, (challenge, authz, account.thumbprint))
        if task is not None:
            await asyncio.wait({task}, timeout=ANSWER_WITHIN)
            if task.done() and not task.cancelled() and task.exception() is None:
                return task.result() or await self._store.get_challenge(challenge.id)
        return challenge
