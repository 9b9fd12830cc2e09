"""What keeps a busy CA's database bounded: pruning what has expired, and its size.

Certificates are never pruned (a CA answers for every certificate it signed); orders
and authorizations are, some time (``[retention] grace``) after they expire, and so
are full rate-limit buckets. Expired nonces are purged by ``NonceStore``.

Each prune deletes the oldest rows first, a bounded batch in one transaction. Stores
pruning at once (two processes, a former lease holder) delete every row once, and
none of them fails for the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TableStats:
    """One table: its rows and the bytes it and its indexes take (None when the
    backend cannot tell)."""

    name: str
    rows: int
    bytes: int | None


class RetentionStore(Protocol):
    async def prune_orders(self, expired_before: datetime, *, limit: int) -> int:
        """Delete at most ``limit`` orders (any status but processing: one being signed
        stays until ``finish_order`` or the sweeper ends it) whose ``expires`` is before
        ``expired_before``, with their list of authorizations; how many. A certificate
        keeps the id of the order it came from. ``ValueError`` if ``limit`` < 1."""

    async def prune_authorizations(self, expired_before: datetime, *, limit: int) -> int:
        """Delete at most ``limit`` authorizations (with their challenges) whose
        ``expires`` is before ``expired_before``, that no remaining order lists, and
        none of whose challenges is processing (a validation settling it finds it
        there); how many. ``ValueError`` if ``limit`` < 1."""

    async def prune_limits(self, now: datetime, *, limit: int) -> int:
        """Delete at most ``limit`` rate-limit buckets that are full at ``now`` (their
        TAT has passed: the same as no row); how many."""

    async def table_stats(self) -> list[TableStats]:
        """Every table of the CA's schema, by name."""
