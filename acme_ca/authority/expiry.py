"""Expiring orders and authorizations (RFC 8555 7.1.6): a job of the cluster's
background work (``background.py``: the lease holder, every period).

An order or authorization past its ``expires`` is judged invalid (expired) whenever it
is read (``domain/states.py``), so a client never sees one as open; this job writes
that judgement down, so the rows stop being pending in the database for good (what an
operator queries, what a listing counts). The store moves each row by compare-and-set
with the domain's rule (``Store.expire_authorizations``, ``Store.expire_orders``), so
a former lease holder still running this job beside the new one moves nothing twice.

Like the nonce purge (``nonces.py``), it goes ``EXPIRY_BATCH`` rows per call and lets
the loop's other tasks run between two: a backlog (a CA that ran for a year before
this job existed) never holds SQLite's event loop, or its write lock, for long. What
is left when the background work's time runs out goes next period.

It runs every ``EXPIRY_EVERY`` rather than every period (``background.Job.every``):
what it writes down no client can see earlier (a read already judges the row expired),
and its two transactions every 2 s were a fifth of an idle server's CPU (0.5 of
2.6 ms a round).
"""

from __future__ import annotations

from acme_ca.authority.background import in_batches
from acme_ca.clock import Clock
from acme_ca.store.writes import WriteStore

# Rows per transaction: each is read, judged and moved in one (SQLite: on the loop).
EXPIRY_BATCH = 100
EXPIRY_EVERY = 60.0  # seconds between two completed rounds (background.Job.every)


class Expiry:
    """Moves the orders and authorizations whose time has passed."""

    def __init__(self, store: WriteStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def expire(self, batch: int = EXPIRY_BATCH) -> int:
        """Expire what has expired now, authorizations then orders, ``batch`` per call;
        how many rows moved."""
        now = self._clock.now()
        return (await in_batches(self._store.expire_authorizations, now, batch)
                + await in_batches(self._store.expire_orders, now, batch))

