"""What the store keeps of who may get what: External Account Binding keys and the
rate limits' buckets (see ``base.py`` for the rules every backend keeps).

Rate limits live in the store, not in a process, so that every worker and every
replica spends from the same buckets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from acme_ca.domain.limits import LimitDecision, PendingAuthorizations
from acme_ca.domain.models import EabKey


class EabStore(Protocol):
    """External Account Binding keys (RFC 8555 7.3.4). Keys are never deleted: a revoked
    one stays, so that its account is known to be stopped and its kid is never reused.
    A key binds one account: ``create_account`` with an ``Account.eab_kid`` binds it
    in the same transaction (see ``WriteStore.create_account``)."""

    async def create_eab_key(self, key: EabKey) -> EabKey:
        """Insert; ``Conflict`` if the kid exists. ``key.account_id`` and
        ``key.revoked_at`` must be None (``ValueError``)."""

    async def get_eab_key(self, kid: str) -> EabKey:
        """The key with the account it bound, if any; ``NotFound``."""

    async def list_eab_keys(self) -> list[EabKey]:
        """Every key, oldest first (created_at, then kid), with the account each bound."""

    async def revoke_eab_key(self, kid: str, revoked_at: datetime) -> EabKey:
        """Compare-and-set not revoked -> revoked; ``Conflict`` if already revoked,
        ``NotFound`` if absent."""


class LimitStore(Protocol):
    """The rate limits' GCRA buckets (``domain/limits.py``), and the counts some limits
    read from the resources themselves."""

    async def spend_limit(self, name: str, key: str, now: datetime, *, count: int,
                          period: timedelta, cost: int = 1) -> LimitDecision:
        """Spend ``cost`` from the bucket ``(name, key)`` of a ``count``/``period`` limit,
        if it fits (``domain.limits.decide`` on the stored TAT); the new TAT is stored
        only then. Of concurrent spends through any stores on one database, each sees
        the other's: a limit of N lets N through, never more. ``cost`` 0 only asks, and
        writes nothing. ``ValueError`` as ``decide`` raises it."""

    async def refund_limit(self, name: str, key: str, now: datetime, *, count: int,
                           period: timedelta, cost: int = 1) -> None:
        """Give back what a spend took, when what it paid for did not happen (an
        order that could not be created): the TAT moves back by ``cost`` intervals,
        never before ``now``."""

    async def count_pending_authorizations(self, account_id: str, now: datetime
                                           ) -> PendingAuthorizations:
        """How many of the account's authorizations are PENDING and unexpired at
        ``now``, and when the first of them expires (None when there is none)."""
