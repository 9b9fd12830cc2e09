"""Rate limits (RFC 8555 6.6): where the CA spends from the buckets the store keeps, and
what a client over a limit hears.

The buckets live in the store (``LimitStore``), so every worker and every replica
spends from the same ones; each is a GCRA bucket (``domain/limits.py``, Boulder's
ratelimits). The limits, [limits] in the config (``config_policy.LimitsConfig``), each
overridable per External Account Binding key (``Grant.limits``; None is unlimited):

- ``new_accounts_per_ip``: spent by newAccount when it creates an account, keyed by
  the client's address as the connection gives it (never X-Forwarded-For, which any
  client writes); an IPv6 address by its /64, which one host usually holds whole.
- ``new_orders_per_account``: spent by newOrder once its identifiers passed the
  policy and the checks below, inside the store's ``create_order`` (one write: an
  order not created spent nothing).
- ``pending_authorizations_per_account``: not a rate but a ceiling on the account's
  authorizations pending at once, those pending now plus those the order would add;
  held by the store's ``create_order``, which counts inside its write (concurrent
  orders of one account cannot all pass), before the spend above.
- ``failed_validations_per_identifier``: per account and identifier, Boulder's
  FailedAuthorizationsPerDomainPerAccount; spent where the validation supervisor
  records a validation invalid, checked by newOrder (once per base name: ``a.x`` and
  ``*.a.x`` are one) and again when a challenge is answered (orders opened first
  would otherwise validate the name again and again).
- ``certificates_per_names``: per exact set of names (a digest of the sorted set,
  Boulder's CertificatesPerFQDNSet); checked by newOrder (an early refusal), spent by
  finalize inside the store's ``start_issuance`` (the authoritative check: orders
  opened before the bucket emptied get no more certificates than it holds; the order
  stays ready; a finalize that loses the order to another spent nothing) and refunded
  if the signature then fails; neither for a renewal ARI asked for (an order whose
  ``replaces`` qualifies: ``renewal_info.RenewalInfo._exempt`` decides).

The two spends ride the writes they pay for (``domain.limits.Spend``) rather than
being write transactions of their own: server CPU per issuance was 7.3 ms before the
limits, 8.0 ms with a transaction each, 7.5 ms riding along (``python -m bench compare
-n 300 -c 8 --runs 5``, medians of four alternated runs, issue 11 review).

Over a limit: 429 rateLimited with Retry-After (whole seconds, rounded up) and a
detail naming the limit, its value and when the bucket is full again (RFC 3339).
What is spent after the fact (a failed validation) never fails the work it counts:
an empty bucket stays empty, and a store out of reach only loses that one count (a
warning says so).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from acme_ca import metrics
from acme_ca.authority.grants import UNRESTRICTED, Grant, grant_for
from acme_ca.authority.identifiers import authorization_identifier
from acme_ca.clock import Clock
from acme_ca.config_policy import (
    CERTIFICATES,
    FAILED_VALIDATIONS,
    NEW_ACCOUNTS,
    NEW_ORDERS,
    PENDING,
    Limit,
    LimitsConfig,
    format_limit,
)
from acme_ca.domain.limits import Spend
from acme_ca.domain.models import Account, Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.encoding import rfc3339
from acme_ca.errors import NotFound, StoreError
from acme_ca.store.base import Store

log = logging.getLogger(__name__)

# No limit at all: what a service built without [limits] (a unit test) gets.
NO_LIMITS = LimitsConfig(None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class Charge:
    """A spend from one bucket: made here (``spend``), or by a store write that carries
    it (``store``); given back by ``RateLimits.refund`` if what it paid for did not
    happen. ``what``: the start of the 429 detail."""

    name: str
    key: str
    limit: Limit
    what: str

    @property
    def store(self) -> Spend:
        """The spend of one, as ``create_order`` and ``start_issuance`` take it."""
        return Spend(self.name, self.key, self.limit.count, self.limit.period)


class RateLimits:
    def __init__(self, store: Store, clock: Clock, config: LimitsConfig = NO_LIMITS) -> None:
        self._store = store
        self._clock = clock
        self._config = config

    # --- newAccount ---------------------------------------------------------------------

    async def new_account(self, address: str | None, grant: Grant = UNRESTRICTED
                          ) -> Charge | None:
        """Spend one of ``new_accounts_per_ip`` for the client at ``address`` (the
        connection's peer, request.remote), or raise rateLimited."""
        key = address_key(address)
        return await self.spend(
            self._charge(NEW_ACCOUNTS, key, grant, f"too many new accounts from {key}"))

    # --- newOrder -------------------------------------------------------------------------

    async def new_order(self, account: Account, grant: Grant,
                        identifiers: Sequence[Identifier], *, exempt: bool = False
                        ) -> Charge | None:
        """The checks of an order about to be created (rateLimited for the first limit
        it is over), then the one of ``new_orders_per_account`` for the store's
        ``create_order`` to spend (``Charge.store``; None: unlimited). ``exempt``: the
        order is a renewal ARI asked for (``renewal_info``), exempt from
        ``certificates_per_names``. The pending ceiling is ``pending_ceiling``'s."""
        bases = dict.fromkeys(authorization_identifier(i)[0] for i in identifiers)
        for base in bases:  # a.x and *.a.x: one bucket, asked once
            await self._failed_validations(account.id, grant, base)
        if not exempt:
            await self.spend(self._certificates(grant, identifiers), cost=0)
        return self._charge(NEW_ORDERS, account.id, grant, "too many new orders for this account")

    async def refund(self, charge: Charge | None) -> None:
        """Give back what ``new_account`` spent, or a store write spent of a charge."""
        if charge is None:
            return
        await self._store.refund_limit(charge.name, charge.key, self._clock.now(),
                                       count=charge.limit.count, period=charge.limit.period)

    # --- finalize and challenges ------------------------------------------------------------

    def issuance(self, grant: Grant, identifiers: Sequence[Identifier], *,
                 exempt: bool = False) -> Charge | None:
        """The one of ``certificates_per_names`` a certificate for exactly
        ``identifiers`` costs, for the store's ``start_issuance`` to spend (None:
        unlimited, or ``exempt``: a renewal ARI asked for, ``renewal_info``)."""
        if exempt:
            return None
        return self._certificates(grant, identifiers)

    async def challenge_answered(self, account: Account, identifier: Identifier) -> None:
        """rateLimited if the account's failed validations of ``identifier`` (an
        authorization's base name) are over ``failed_validations_per_identifier``
        (the account's overrides apply)."""
        await self._failed_validations(account.id, await self._grant(account), identifier)

    async def _failed_validations(self, account_id: str, grant: Grant,
                                  base: Identifier) -> None:
        await self.spend(self._charge(
            FAILED_VALIDATIONS, failed_key(account_id, base), grant,
            f"too many failed validations of {base.value} for this account"), cost=0)

    def _certificates(self, grant: Grant, identifiers: Sequence[Identifier]
                      ) -> Charge | None:
        names = ", ".join(sorted({i.value for i in identifiers}))
        return self._charge(CERTIFICATES, names_key(identifiers), grant,
                            f"too many certificates for exactly these names ({names})")

    # --- after the fact ---------------------------------------------------------------------

    async def failed_validation(self, account_id: str, identifier: Identifier) -> None:
        """A validation of ``identifier`` (an authorization's: the base name) for the
        account was recorded invalid: one of ``failed_validations_per_identifier``."""
        await self._count(FAILED_VALIDATIONS, failed_key(account_id, identifier), account_id)

    # --- the buckets ----------------------------------------------------------------------

    def _limit(self, name: str, grant: Grant) -> Limit | int | None:
        if name in grant.limits:
            return grant.limits[name]
        limit: Limit | int | None = getattr(self._config, name)
        return limit

    def _charge(self, name: str, key: str, grant: Grant, what: str) -> Charge | None:
        limit = self._limit(name, grant)
        return Charge(name, key, limit, what) if isinstance(limit, Limit) else None

    async def spend(self, charge: Charge | None, *, cost: int = 1) -> Charge | None:
        """Spend ``cost`` of ``charge`` (0: only ask) or raise rateLimited; what to
        refund (None when nothing was spent)."""
        if charge is None:
            return None
        now = self._clock.now()
        decision = await self._store.spend_limit(charge.name, charge.key, now,
                                                 count=charge.limit.count,
                                                 period=charge.limit.period, cost=cost)
        if not decision.allowed:
            raise self.refused(charge, decision.retry_at, decision.resets_at)
        return charge if cost else None

    def refused(self, charge: Charge, retry_at: datetime, resets_at: datetime
                ) -> AcmeProblem:
        """rateLimited for ``charge``, which fits again at ``retry_at``, its bucket full
        at ``resets_at`` (a store write's ``LimitReached`` carries both)."""
        metrics.RATE_LIMIT_HITS.labels(charge.name).inc()
        return rate_limited(
            f"{charge.what}: over {charge.name} = {format_limit(charge.limit)}; retry "
            f"after {rfc3339(retry_at, round_up=True)}, the limit resets at "
            f"{rfc3339(resets_at, round_up=True)}",
            retry_after(retry_at, self._clock.now()))

    def pending_ceiling(self, grant: Grant) -> int | None:
        """``pending_authorizations_per_account`` for ``grant`` (None: unlimited), for
        the store's ``create_order`` to hold inside its write."""
        limit = self._limit(PENDING, grant)
        return limit if isinstance(limit, int) and not isinstance(limit, bool) else None

    def pending_refused(self, pending: int, first_expires: datetime | None, adding: int,
                        limit: int) -> AcmeProblem:
        """rateLimited for an order over ``pending_authorizations_per_account``."""
        metrics.RATE_LIMIT_HITS.labels(PENDING).inc()
        now = self._clock.now()
        frees = first_expires or now
        return rate_limited(
            f"too many pending authorizations: {pending} pending and {adding} more "
            f"asked for, over {PENDING} = {limit}; they are released as they are "
            f"validated, deactivated or expire (the first by {rfc3339(frees, round_up=True)})",
            retry_after(frees, now))

    async def _count(self, name: str, key: str, account: Account | str) -> None:
        """Spend one of ``name`` for what already happened: refused or not, never an
        error (the account's overrides apply: its grant is read here)."""
        try:
            grant = await self._grant(account)
            limit = self._limit(name, grant)
            if isinstance(limit, Limit):
                await self._store.spend_limit(name, key, self._clock.now(),
                                              count=limit.count, period=limit.period)
        except StoreError as exc:
            log.warning("rate limit %s not counted for %s: %s", name, key, exc)

    async def _grant(self, account: Account | str) -> Grant:
        try:
            if isinstance(account, str):
                account = await self._store.get_account(account)
            return await grant_for(self._store, account, self._clock.now())
        except (AcmeProblem, NotFound):  # a revoked key, a deleted account: no new orders
            return UNRESTRICTED          # anyway, the count only has to be kept


def rate_limited(detail: str, seconds: int) -> AcmeProblem:
    """429 rateLimited (RFC 8555 6.6) with Retry-After (RFC 9110 10.2.3)."""
    return AcmeProblem(ProblemType.RATE_LIMITED, detail,
                       headers={"Retry-After": str(seconds)})


def retry_after(moment: datetime, now: datetime) -> int:
    """Whole seconds from ``now`` to ``moment``, rounded up, at least 1."""
    return max(1, math.ceil((moment - now).total_seconds()))


def address_key(address: str | None) -> str:
    """The bucket of a client address: IPv4 as it is, IPv6 by its /64."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:  # a dual-stack socket's IPv4 client
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def failed_key(account_id: str, identifier: Identifier) -> str:
    return f"{account_id}:{identifier.type}:{identifier.value}"


def names_key(identifiers: Sequence[Identifier]) -> str:
    """A digest of the sorted set of names, whatever their order and repetitions."""
    names = sorted({f"{i.type}:{i.value.lower()}" for i in identifiers})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()
