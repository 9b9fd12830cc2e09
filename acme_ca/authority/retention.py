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
one log line, also when the background work's time cut it short. It runs every
``RETENTION_EVERY``, not every period (``background.Job.every``): against a grace of an
hour at least, a minute more changes nothing, and its three transactions every 2 s
were a fifth of an idle server's CPU (0.6 of 2.6 ms a round), more when each round
found a bucket that had just filled (one a round under sequential ``lego run`` clients).

A wall clock that steps forward (a bad NTP server, a VM resumed with a wrong clock)
would make live rows look expired long ago, and a round would delete them for good.
So each round compares how far the wall clock moved since the last one with how far
the monotonic clock did (``Clock.monotonic``, which never steps): ahead by more than
``CLOCK_STEP``, the round is skipped with a warning, and so is every round until the
wall clock has kept time for ``CLOCK_STEP`` (time to correct a bad step; a right one,
a resumed VM's, only delays pruning that long). A wall clock already wrong when this
process took the work is not caught: there is no reading before it to compare.
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
RETENTION_EVERY = 60.0  # seconds between two completed rounds (background.Job.every)

Prune = Callable[..., Awaitable[int]]

# How far the wall clock may run ahead of the monotonic one between two rounds (NTP
# slews a drift of seconds), and how long it must then keep time to be trusted again.
CLOCK_STEP = timedelta(hours=1)


class Retention:
    """Deletes what expired more than ``grace`` ago, and full rate-limit buckets."""

    def __init__(self, store: RetentionStore, clock: Clock, grace: timedelta) -> None:
        check_retention_grace(grace)
        self._store = store
        self._clock = clock
        self._grace = grace
        self._last: tuple[datetime, float] | None = None  # the last round's two clocks
        self._stepped_at: float | None = None  # monotonic, at the last step not yet trusted

    async def prune(self, batch: int = RETENTION_BATCH) -> int:
        """One round, ``batch`` rows per call; how many rows were deleted (none in a
        round skipped because the wall clock stepped forward)."""
        now = self._clock.now()
        if not self._wall_clock_trusted(now, self._clock.monotonic()):
            return 0
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

    def _wall_clock_trusted(self, now: datetime, tick: float) -> bool:
        """False if the wall clock stepped forward since the last round, or did less
        than ``CLOCK_STEP`` ago (monotonic): warned once per step."""
        last, self._last = self._last, (now, tick)
        if last is not None:
            passed = timedelta(seconds=tick - last[1])
            ahead = now - last[0] - passed
            if ahead > CLOCK_STEP:
                self._stepped_at = tick
                log.warning("retention: the wall clock stepped %s ahead of the monotonic "
                            "clock since the last round (%s ago): no pruning until it has "
                            "kept time for %s", format_duration(ahead),
                            format_duration(passed), format_duration(CLOCK_STEP))
                return False
        if self._stepped_at is not None:
            if tick - self._stepped_at < CLOCK_STEP.total_seconds():
                return False
            self._stepped_at = None
        return True
