"""Background validation, supervised: bounded, fair, drained at shutdown, resumed at start.

A challenge POST moves the challenge to PROCESSING and hands its id here; the
validation runs in a task owned by this object (never a bare create_task), and its
result is recorded with one conditional write (``record_validation``). Challenges a
stopped process left PROCESSING are picked up again by ``resume``.

Limits (issue "a validation authority that is safe to run inside a network"):

- ``max_in_flight`` validations run at once, server-wide ([validation] max_in_flight);
- ``max_in_flight_per_account`` of them at most for one account.

A validation beyond either limit **waits**: its challenge stays ``processing`` and it
starts when a slot frees. It is never failed for being one too many, because:

- RFC 8555 7.5.1 lets the server take its time: the client polls while the challenge
  is ``processing``. Failing it would make the authorization invalid for good, and
  clients (certbot, lego) answer every challenge of an order before polling, so an
  order with more names than the per-account limit would always fail.
- Boulder rate-limits where work is created (new orders, failed validations per
  account and name), and its RA starts a validation for every challenge it is asked
  to (``ra.PerformValidation``: a goroutine under ``drainWG``, no admission check);
  step-ca validates inside the request. Neither refuses a challenge for load, and
  ``rateLimited`` (RFC 8555 6.6) belongs to the request that creates the work.
- The queue needs no bound of its own: it holds one entry per PROCESSING challenge,
  and challenges exist only in authorizations that the order policy already bounds.

Fairness: a validation takes its account's slot first, and only then a global one. So
one account never holds more than ``max_in_flight_per_account`` global slots nor more
than that many places in the global queue (asyncio.Semaphore wakes waiters in FIFO
order): a flood of challenges from one account leaves the other slots to the other
accounts, and an account's single validation waits behind at most
``max_in_flight_per_account`` entries of each busy account.

Time: ``timeout`` is the validators' own deadline ([validation] timeout, which
http-01 enforces itself with a precise problem). The supervisor cancels a validator
still running ``grace`` seconds after it, so one that ignores its deadline cannot hold
a slot; time spent waiting for a slot does not count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from acme_ca.clock import Clock
from acme_ca.domain.models import Authorization, Challenge, ChallengeStatus
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.errors import Conflict, NotFound
from acme_ca.store.base import Store
from acme_ca.validation.base import Validator, key_authorization
from acme_ca.validation.caa import CaaChecker

log = logging.getLogger(__name__)

# What validating a challenge needs: the challenge, its authorization, the account key's
# RFC 7638 thumbprint (for the key authorization).
Known = tuple[Challenge, Authorization, str]


@dataclass(slots=True)
class _AccountSlots:
    """One account's semaphore and how many validations hold or await it."""

    semaphore: asyncio.Semaphore
    users: int = 0
    running: int = 0


class ValidationSupervisor:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        validators: Mapping[str, Validator],
        *,
        valid_authorization_lifetime: timedelta,
        max_in_flight: int = 64,
        max_in_flight_per_account: int = 8,
        timeout: float = 30.0,
        grace: float = 1.0,
        caa: CaaChecker | None = None,
        account_uri: Callable[[str], str] = str,
    ) -> None:
        if max_in_flight < 1 or max_in_flight_per_account < 1:
            raise ValueError("validation limits must be at least 1")
        self._store = store
        self._clock = clock
        self._validators = validators
        self._lifetime = valid_authorization_lifetime
        self._slots = asyncio.Semaphore(max_in_flight)
        self._per_account = max_in_flight_per_account
        self._accounts: dict[str, _AccountSlots] = {}
        self._timeout = timeout
        self._grace = grace
        self._caa = caa
        self._account_uri = account_uri
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def challenge_types(self) -> tuple[str, ...]:
        return tuple(self._validators)

    def running(self, account_id: str | None = None) -> int:
        """Validations running now (holding a global slot), for one account or all."""
        if account_id is not None:
            entry = self._accounts.get(account_id)
            return entry.running if entry is not None else 0
        return sum(entry.running for entry in self._accounts.values())

    def queued(self, account_id: str | None = None) -> int:
        """Validations waiting for a slot (their challenge still processing), for one
        account or all."""
        if account_id is None:
            entries = list(self._accounts.values())
        else:
            entries = [self._accounts[account_id]] if account_id in self._accounts else []
        return sum(entry.users - entry.running for entry in entries)

    def submit(
        self, challenge_id: str, known: Known | None = None
    ) -> asyncio.Task[Challenge | None] | None:
        """Validate in the background; the task is returned so that a caller may wait a
        little for it (it is owned here: cancelling the caller does not cancel it) and
        gives the settled challenge. `known`: the PROCESSING challenge, its authorization
        and the account key thumbprint, when the caller has just read them."""
        if self._closed:
            return None
        task = asyncio.get_running_loop().create_task(self._run(challenge_id, known))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def resume(self) -> int:
        challenges = await self._store.processing_challenges(self._clock.now(), limit=1000)
        for challenge in challenges:
            self.submit(challenge.id)
        return len(challenges)

    async def wait_idle(self) -> None:
        """Wait for every validation in flight or queued (tests; graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 5.0) -> None:
        """Stop taking work, let validations in flight finish for `grace` seconds,
        then cancel the rest (they stay PROCESSING and are resumed at next start)."""
        self._closed = True
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, challenge_id: str, known: Known | None) -> Challenge | None:
        try:
            loaded = known or await self._load(challenge_id)
            if loaded is None:
                return None
            account_id = loaded[1].account_id
            queued = self._would_wait(account_id)
            async with self._admitted(account_id):
                if queued:  # it may have been settled while it waited
                    loaded = await self._load(challenge_id)
                    if loaded is None:
                        return None
                return await self._validate(*loaded)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("validation of challenge %s failed unexpectedly", challenge_id)
            problem = AcmeProblem(
                ProblemType.SERVER_INTERNAL, "the validation failed inside the server", status=500
            )
            return await self._record(challenge_id, problem)

    def _would_wait(self, account_id: str) -> bool:
        entry = self._accounts.get(account_id)
        return self._slots.locked() or (entry is not None and entry.semaphore.locked())

    @asynccontextmanager
    async def _admitted(self, account_id: str) -> AsyncIterator[None]:
        """The account's slot, then a global one (see the module docstring: fairness)."""
        entry = self._accounts.get(account_id)
        if entry is None:
            entry = self._accounts[account_id] = _AccountSlots(asyncio.Semaphore(self._per_account))
        entry.users += 1
        try:
            async with entry.semaphore, self._slots:
                entry.running += 1
                try:
                    yield
                finally:
                    entry.running -= 1
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._accounts[account_id]

    async def _load(self, challenge_id: str) -> Known | None:
        """The challenge, its authorization and the account key's thumbprint, or None if
        the challenge is no longer PROCESSING."""
        try:
            challenge = await self._store.get_challenge(challenge_id)
            if challenge.status is not ChallengeStatus.PROCESSING:
                return None
            authz = await self._store.get_authorization(challenge.authorization_id)
            account = await self._store.get_account(authz.account_id)
        except NotFound:
            log.info("challenge %s is gone", challenge_id)
            return None
        return challenge, authz, account.thumbprint

    async def _validate(
        self, challenge: Challenge, authz: Authorization, thumbprint: str
    ) -> Challenge | None:
        validator = self._validators.get(challenge.type)
        if validator is None:
            problem = AcmeProblem(
                ProblemType.MALFORMED, f"challenge type {challenge.type} is not supported"
            )
            return await self._record(challenge.id, problem)
        problem: AcmeProblem | None
        try:
            problem = await asyncio.wait_for(
                self._check(validator, challenge, authz, authz.account_id, thumbprint),
                self._timeout + self._grace,
            )
        except TimeoutError:
            problem = AcmeProblem(
                ProblemType.CONNECTION,
                f"validation of {authz.identifier.value} did not finish within its time "
                f"limit of {self._timeout:g}s",
            )
        if problem is not None and problem.identifier is None:
            problem.identifier = authz.identifier
        log.info(
            "challenge %s (%s %s): %s",
            challenge.id,
            challenge.type,
            authz.identifier.value,
            "valid" if problem is None else problem.detail,
        )
        return await self._record(challenge.id, problem)

    async def _check(self, validator: Validator, challenge: Challenge, authz: Authorization,
                     account_id: str, thumbprint: str) -> AcmeProblem | None:
        """The challenge, then CAA (RFC 8659, at validation time, as Boulder does)."""
        result = await validator.validate(
            authz.identifier, challenge.token, key_authorization(challenge.token, thumbprint)
        )
        if result.problem is not None:  # the addresses, CNAMEs...: the operator's, not the client's
            log.info("challenge %s: what validation saw: %s", challenge.id, result.records)
        if result.problem is not None or self._caa is None:
            return result.problem
        return await self._caa.check(
            authz.identifier,
            wildcard=authz.wildcard,
            account_uri=self._account_uri(account_id),
            method=challenge.type,
        )

    async def _record(self, challenge_id: str, problem: AcmeProblem | None) -> Challenge | None:
        """Store the result; the settled challenge, or None if another process won."""
        now = self._clock.now()
        try:
            settled, _ = await self._store.record_validation(
                challenge_id,
                valid=problem is None,
                error=problem.dumps() if problem is not None else None,
                validated_at=now,
                authorization_expires=now + self._lifetime if problem is None else None,
            )
        except (Conflict, NotFound):
            log.info("challenge %s was settled elsewhere", challenge_id)
            return None
        return settled
