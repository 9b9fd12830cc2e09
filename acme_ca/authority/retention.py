"""Retention: keeping a busy CA's database bounded (issue 11), a job of the cluster's
background work (``background.py``: the lease holder, every period).

Orders and authorizations whose ``expires`` is older than now minus ``[retention]
grace`` are deleted (``Store.prune_orders``, ``Store.prune_authorizations``): past
their expiry they are invalid and no client can use them (RFC 8555 7.1.6); the grace
keeps them a while for an operator's questions. Orders go first, so that the
authorizations they alone listed go in the same round; an order still processing
(being signed) waits until ``finish_order`` or the sweeper ends it. The grace is at
least an hour (``config_policy.MIN_RETENTION_GRACE``). Certificates are never deleted,
and an authorization still listed by a kept order is kept. Full rate-limit buckets go
too (a row whose TAT has passed is the same as no row: ``domain/limits.py``). Expired
nonces are the nonce job's (``nonces.py``).

As the expiry job (``expiry.py``), it goes ``RETENTION_BATCH`` rows per transaction
and lets the loop's other tasks run between two, so a backlog (the first run on a
database a year old) never holds SQLite's event loop, or its write lock, for long;
what is left when the background work's time runs out goes next period. Each store
deletes each row once however many processes prune at once (a former lease holder
still running this job beside the new one). A round that deleted anything says so in
one log line, also when the background work's time cut it short.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from acme_ca.authority.background import in_batches
from acme_ca.clock import Clock
from acme_ca.config_policy import check_retention_grace
from acme_ca.config_values import format_duration
from acme_ca.store.retention import RetentionStore

log = logging.getLogger(__name__)

# Rows per transaction: each batch is read and deleted, with the rows hanging off it
# (an order's list of authorizations, an authorization's challenges), in one.
RETENTION_BATCH = 200

Prune = Callable[..., Awaitable[int]]


class Retention:
    """Deletes what expired more than ``grace`` ago, and full rate-limit buckets."""

    def __init__(self, store: RetentionStore, clock: Clock, grace: timedelta) -> None:
        check_retention_grace(grace)
        self._store = store
        self._clock = clock
        self._grace = grace

    async def prune(self, batch: int = RETENTION_BATCH) -> int:
        """One round, ``batch`` rows per call; how many rows were deleted."""
        now = self._clock.now()
        cut = now - self._grace
        done = {"orders": 0, "authorizations": 0, "buckets": 0}

        def counted(kind: str, prune: Prune) -> Prune:
            async def run(moment: datetime, *, limit: int) -> int:
                deleted = await prune(moment, limit=limit)
                done[kind] += deleted
                return deleted

            return run

        try:
            await in_batches(counted("orders", self._store.prune_orders), cut, batch)
            await in_batches(counted("authorizations", self._store.prune_authorizations),
                             cut, batch)
            await in_batches(counted("buckets", self._store.prune_limits), now, batch)
        finally:
            if any(done.values()):
                log.info("retention: deleted %d orders and %d authorizations expired before "
                         "%s ([retention] grace %s), and %d full rate-limit buckets",
                         done["orders"], done["authorizations"],
                         cut.isoformat(timespec="seconds"), format_duration(self._grace),
                         done["buckets"])
        return sum(done.values())
