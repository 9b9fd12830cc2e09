"""What replicas share besides the data: anti-replay nonces and leases.

Both live in the database, because replicas share nothing else: a nonce issued by one
replica is accepted by any other, exactly once (RFC 8555 6.5); a lease names the one
process that runs the cluster's background work (``authority/background.py``) and
passes to another within seconds when its holder stops renewing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol


class NonceStore(Protocol):
    """Anti-replay nonces (RFC 8555 6.5), shared by every process and replica.

    A nonce lives until it is consumed or expires; restarting a process or a replica
    forgets none (a restart voids nobody's nonces). A backend that writes nonces
    without durable commits forgets all of them after a crash of the machine or of the
    database, so that a consumption lost in the crash cannot let a request be replayed
    (PostgreSQL: an UNLOGGED table, emptied by crash recovery; SQLite: the nonce file
    remembers the boot it was written in).
    """

    async def add_nonce(self, nonce: str, expires: datetime) -> None:
        """Remember a freshly issued nonce until ``expires``; ``Conflict`` if known."""

    async def add_nonces(self, nonces: Sequence[str], expires: datetime) -> None:
        """``add_nonce`` for many at once, in one statement."""

    async def consume_nonce(self, nonce: str, now: datetime) -> bool:
        """Delete the nonce; True only if it existed and had not expired.

        Of two concurrent calls with the same nonce, through one store or two stores on
        one database, exactly one returns True. An expired nonce is deleted too (and
        answers False). Other nonces are left alone: expired ones are deleted by
        ``purge_expired_nonces``.
        """

    async def purge_expired_nonces(self, now: datetime, *, limit: int) -> int:
        """Delete at most ``limit`` nonces expired at ``now`` (``expires <= now``, as
        ``consume_nonce`` refuses them); how many were deleted. One bounded statement
        (every response mints a nonce, so millions may be waiting): a caller that got
        ``limit`` calls again. ``ValueError`` if ``limit`` is below 1.
        """


class LeaseStore(Protocol):
    """Named leases: at most one holder at a time, until the lease expires.

    Time is the database's clock where there is one server (PostgreSQL's), so replicas
    whose clocks drift still agree; SQLite, on one machine, uses that machine's.
    """

    async def hold_lease(self, name: str, holder: str, ttl: timedelta) -> datetime | None:
        """Take the lease ``name`` for ``holder`` if it is free or expired, or renew it if
        ``holder`` has it, until ``ttl`` from now; the new expiry, or None if another
        holder has an unexpired lease. Of two racers exactly one gets it."""

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if ``holder`` has it (at shutdown, so that another process
        takes over at once); nothing otherwise."""

    async def lease_holder(self, name: str) -> str | None:
        """Who holds the lease ``name`` now, unexpired on the lease's clock; None if it is
        free or expired. One indexed read, no write (``/readyz`` asks it every poll)."""
