"""CAA checked again when a valid authorization is reused, and at finalize (RFC 8659 3;
Boulder's rule).

CAA is checked when a challenge is validated (``supervisor``). A valid authorization is
then reused by later orders of the same account for ``[policy]
valid_authorization_lifetime`` (1 day by default), but the CA/Browser Forum Baseline
Requirements (3.2.2.8) want CAA checked within 8 hours before issuance. So when
``new_order`` reuses an authorization validated more than ``RECHECK_AFTER`` ago, CAA is
looked up again, as Boulder's ``ra.checkAuthorizationsCAA`` does past its
``caaRecheckDuration``. ``finalize`` asks again (``check``) for the order's
authorizations, as Boulder's ``ra.FinalizeOrder`` does: an authorization reused at
7 hours without a recheck is 23 hours old when that order is finalized, and CAA may
have changed in between. Nothing happens when CAA is off ([validation] caa_identities
empty: the wiring passes no recheck at all).

Decisions:

- The validated time is the valid challenge's ``validated_at``: the supervisor checks
  CAA right after a challenge succeeds, so it is also when CAA was last looked up. An
  authorization without one (none is stored that way today) counts from its
  ``created_at``, which is earlier: its age is over-estimated and CAA is rechecked
  sooner, never later.
- RFC 8657 ``validationmethods`` is judged against the type of the valid challenge
  (Boulder: the first valid challenge), ``accounturi`` against the account's URL.
- A failed recheck refuses the new order with ``caa`` (403, RFC 8555 6.7) naming the
  identifier, several as subproblems, a failed lookup included (fail closed): Boulder's
  ``recheckCAA`` turns every problem into a CAA error that fails the request. Quietly
  creating a new pending authorization instead would only make the client validate
  again to meet the same CAA set.
- A recheck refused at finalize leaves the order ready, nothing reserved or signed
  (Boulder checks before the order becomes processing): a finalize after CAA allows
  this CA again succeeds, else the order expires.
- A recheck that passes is not recorded: the next order that reuses the authorization
  more than 8 hours after its validation looks again (one lookup per order, as Boulder),
  and so does the finalize of an order whose authorization is older than 8 hours.
- The whole recheck, every identifier and every label CAA climbs (one lookup each, each
  bounded by [validation] timeout on its own), is bounded by [validation] timeout:
  past it the request would hang for minutes on a slow DNS. Running out of time fails
  the check (fail closed) with a ``caa`` problem saying the lookup timed out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from acme_ca.domain.models import Authorization, ChallengeStatus, Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.caa import CaaChecker

RECHECK_AFTER = timedelta(hours=8)  # CA/B Baseline Requirements 3.2.2.8


def validated_at(authz: Authorization) -> datetime:
    """When the authorization was validated (and CAA last checked); see the module."""
    times = [
        c.validated_at
        for c in authz.challenges
        if c.status is ChallengeStatus.VALID and c.validated_at is not None
    ]
    return min(times, default=authz.created_at)


def _method(authz: Authorization) -> str:
    return next((c.type for c in authz.challenges if c.status is ChallengeStatus.VALID), "")


class CaaRecheck:
    """Rechecks CAA for reused authorizations validated more than ``after`` ago."""

    def __init__(
        self,
        checker: CaaChecker,
        account_uri: Callable[[str], str],
        after: timedelta = RECHECK_AFTER,
        timeout: float = 10.0,
    ) -> None:
        """``timeout`` ([validation] timeout, seconds) bounds one whole ``check``."""
        self._checker = checker
        self._account_uri = account_uri
        self._after = after
        self._timeout = timeout

    def _stale(self, authorizations: Sequence[Authorization], now: datetime) -> list[Authorization]:
        """The authorizations whose CAA check is older than ``after``."""
        return [a for a in authorizations if validated_at(a) < now - self._after]

    async def check(self, authorizations: Sequence[Authorization], now: datetime) -> None:
        """Raise ``AcmeProblem(caa)`` unless CAA still allows every stale authorization."""
        stale = self._stale(authorizations, now)
        deadline = asyncio.get_running_loop().time() + self._timeout
        found = await asyncio.gather(*(self._recheck(authz, deadline) for authz in stale))
        problems = [problem for problem in found if problem is not None]
        if not problems:
            return
        if len(problems) == 1:
            only = problems[0]
            raise AcmeProblem(ProblemType.CAA, only.detail, status=403,
                              identifier=only.identifier)
        raise AcmeProblem(
            ProblemType.CAA,
            f"CAA rechecked for {len(problems)} identifiers refuses them",
            status=403,
            subproblems=problems,
        )

    async def _recheck(self, authz: Authorization, deadline: float) -> AcmeProblem | None:
        try:
            async with asyncio.timeout_at(deadline):
                problem = await self._checker.check(
                    authz.identifier,
                    wildcard=authz.wildcard,
                    account_uri=self._account_uri(authz.account_id),
                    method=_method(authz),
                )
        except TimeoutError:
            problem = AcmeProblem(
                ProblemType.CAA, f"the CAA lookup timed out after {self._timeout:g}s"
            )
        if problem is None:
            return None
        ordered = authz.identifier  # as the order names it: a wildcard keeps its "*."
        if authz.wildcard:
            ordered = Identifier(ordered.type, f"*.{ordered.value}")
        return AcmeProblem(
            ProblemType.CAA,
            f"CAA rechecked for {ordered.value}: {problem.detail}",
            status=403,
            identifier=ordered,
        )
