"""Background validation, supervised: bounded, fair, drained at shutdown, resumed by a survivor.

A challenge POST moves the challenge to PROCESSING (stamping ``processing_since``) and
hands its id here; the validation runs in a task owned by this object (never a bare
create_task), and its result is recorded with one conditional write
(``record_validation``). One challenge is validated at most once at a time here:
``submit`` of a challenge in flight gives the task already running.

A process that stops (a crash, kill -9, a shutdown that cancelled what was queued)
leaves its challenges PROCESSING. The process holding the cluster's background lease
(``background.py``) calls ``resume_stopped`` every period: the challenges processing
for longer than a validation can last in a live process (``stale_after``: the
validators' timeout, the grace below, and ``RESUME_MARGIN`` for clocks that differ
between replicas) that this process does not run are submitted here. A challenge
queued here for longer than that in a process that lives (a flood) may be validated
twice, here and by the holder: the first result recorded wins, the other hears
``Conflict`` (``_record``), as with any race.

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

from acme_ca import metrics
from acme_ca.authority.limits import RateLimits
from acme_ca.clock import Clock
from acme_ca.domain.models import Authorization, Challenge, ChallengeStatus
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.errors import Conflict, NotFound, StoreUnavailable
from acme_ca.store.base import Store
from acme_ca.validation.base import Validator, key_authorization
from acme_ca.validation.caa import CaaChecker

log = logging.getLogger(__name__)

# What validating a challenge needs: the challenge, its authorization, the account key's
# RFC 7638 thumbprint (for the key authorization).
Known = tuple[Challenge, Authorization, str]

RESUME_MARGIN = timedelta(seconds=5)  # beyond timeout + grace: clocks of replicas differ
RESUME_BATCH = 100  # stale challenges read at a time


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
        limits: RateLimits | None = None,
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
        self._limits = limits or RateLimits(store, clock)  # failed validations are counted
        self._tasks: dict[str, asyncio.Task[Challenge | None]] = {}  # by challenge id
        self._closed = False

    def configure(
        self,
        validators: Mapping[str, Validator],
        *,
        valid_authorization_lifetime: timedelta,
        timeout: float,
        caa: CaaChecker | None,
        limits: RateLimits,
    ) -> None:
        """New settings (a configuration reload: ``authority/settings.py``) for the
        validations that start from now on; those running finish with the old ones. The
        limits on validations in flight stay (their semaphores hold the work queued)."""
        self._validators = validators
        self._lifetime = valid_authorization_lifetime
        self._timeout = timeout
        self._caa = caa
        self._limits = limits

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

    @property
    def stale_after(self) -> timedelta:
        """How long a challenge stays PROCESSING at most while a live process validates
        it (waiting for a slot aside): past that, ``resume_stopped`` takes it."""
        return timedelta(seconds=self._timeout + self._grace) + RESUME_MARGIN

    def submit(
        self, challenge_id: str, known: Known | None = None
    ) -> asyncio.Task[Challenge | None] | None:
        """Validate in the background; the task is returned so that a caller may wait a
        little for it (it is owned here: cancelling the caller does not cancel it) and
        gives the settled challenge. `known`: the PROCESSING challenge, its authorization
        and the account key thumbprint, when the caller has just read them. A challenge
        already in flight here is not validated twice: its task is returned. None once
        closed."""
        if self._closed:
            return None
        running = self._tasks.get(challenge_id)
        if running is not None:
            return running
        task = asyncio.get_running_loop().create_task(self._run(challenge_id, known))
        self._tasks[challenge_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(challenge_id, None))
        return task

    async def resume_stopped(self, batch: int = RESUME_BATCH) -> int:
        """Submit the challenges PROCESSING for longer than ``stale_after`` (their process
        stopped) that are not in flight here, at most ``batch`` at a time; how many were
        submitted. For the holder of the background lease, every period."""
        started_before = self._clock.now() - self.stale_after
        limit = batch + len(self._tasks)  # those in flight here, and a batch
        stale = await self._store.processing_challenges(started_before, limit=limit)
        resumed = [c.id for c in stale if c.id not in self._tasks and self.submit(c.id)]
        if resumed:
            log.warning("resuming %d validation(s) left processing by a stopped process: %s",
                        len(resumed), ", ".join(resumed))
        return len(resumed)

    async def wait_idle(self) -> None:
        """Wait for every validation in flight or queued (tests; graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self, grace: float = 5.0) -> None:
        """Stop taking work, let validations in flight finish for `grace` seconds,
        then cancel the rest (they stay PROCESSING; the holder of the background lease
        resumes them: ``resume_stopped``)."""
        self._closed = True
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks.values()), timeout=grace)
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
        except StoreUnavailable as exc:
            log.warning("challenge %s stays processing, the database cannot be reached (%s): "
                        "the background work resumes it", challenge_id, exc)
            return None
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
            with metrics.VALIDATIONS_IN_FLIGHT.labels(challenge.type).track_inprogress():
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
        metrics.VALIDATIONS.labels(challenge.type, "valid" if problem is None
                                   else problem.type.value).inc()
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
            settled, authz = await self._store.record_validation(
                challenge_id,
                valid=problem is None,
                error=problem.dumps() if problem is not None else None,
                validated_at=now,
                authorization_expires=now + self._lifetime if problem is None else None,
            )
        except (Conflict, NotFound):
            log.info("challenge %s was settled elsewhere", challenge_id)
            return None
        if problem is not None and problem.type is not ProblemType.SERVER_INTERNAL:
            await self._limits.failed_validation(authz.account_id, authz.identifier)
        return settled
