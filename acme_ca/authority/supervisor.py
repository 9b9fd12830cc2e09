"""Background validation, supervised: bounded, drained at shutdown, resumed at start.

A challenge POST moves the challenge to PROCESSING and hands its id here; the
validation runs in a task owned by this object (never a bare create_task), and its
result is recorded with one conditional write (``record_validation``). Challenges a
stopped process left PROCESSING are picked up again by ``resume``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

from acme_ca.clock import Clock
from acme_ca.domain.models import ChallengeStatus
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.errors import Conflict, NotFound
from acme_ca.store.base import Store
from acme_ca.validation.base import Validator, key_authorization

log = logging.getLogger(__name__)


class ValidationSupervisor:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        validators: Mapping[str, Validator],
        *,
        valid_authorization_lifetime: timedelta,
        max_in_flight: int = 64,
        timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._validators = validators
        self._lifetime = valid_authorization_lifetime
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def challenge_types(self) -> tuple[str, ...]:
        return tuple(self._validators)

    def submit(self, challenge_id: str) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._run(challenge_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self) -> int:
        challenges = await self._store.processing_challenges()
        for challenge in challenges:
            self.submit(challenge.id)
        return len(challenges)

    async def wait_idle(self) -> None:
        """Wait for every validation in flight (tests; graceful shutdown)."""
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

    async def _run(self, challenge_id: str) -> None:
        async with self._slots:
            try:
                await self._validate(challenge_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("validation of challenge %s failed unexpectedly", challenge_id)
                problem = AcmeProblem(
                    ProblemType.SERVER_INTERNAL,
                    "the validation failed inside the server",
                    status=500,
                )
                await self._record(challenge_id, problem)

    async def _validate(self, challenge_id: str) -> None:
        challenge = await self._store.get_challenge(challenge_id)
        if challenge.status is not ChallengeStatus.PROCESSING:
            return
        authz = await self._store.get_authorization(challenge.authorization_id)
        account = await self._store.get_account(authz.account_id)
        validator = self._validators.get(challenge.type)
        if validator is None:
            problem = AcmeProblem(
                ProblemType.MALFORMED, f"challenge type {challenge.type} is not supported"
            )
            await self._record(challenge_id, problem)
            return
        problem: AcmeProblem | None
        try:
            result = await asyncio.wait_for(
                validator.validate(
                    authz.identifier,
                    challenge.token,
                    key_authorization(challenge.token, account.thumbprint),
                ),
                self._timeout,
            )
            problem = result.problem
            if problem is not None and problem.identifier is None:
                problem.identifier = authz.identifier
        except TimeoutError:
            problem = AcmeProblem(
                ProblemType.CONNECTION,
                f"validation of {authz.identifier.value} took longer than {self._timeout:g} s",
            )
        await self._record(challenge_id, problem)
        log.info(
            "challenge %s (%s %s): %s",
            challenge_id,
            challenge.type,
            authz.identifier.value,
            "valid" if problem is None else problem.detail,
        )

    async def _record(self, challenge_id: str, problem: AcmeProblem | None) -> None:
        now = self._clock.now()
        try:
            await self._store.record_validation(
                challenge_id,
                valid=problem is None,
                error=problem.dumps() if problem is not None else None,
                validated_at=now,
                authorization_expires=now + self._lifetime if problem is None else None,
            )
        except (Conflict, NotFound):
            log.info("challenge %s was settled elsewhere", challenge_id)
