"""Anti-replay nonces (RFC 8555 6.5): issued here, remembered by the store.

The nonces live behind the store interface, so a nonce issued by one process or
replica is accepted by any other (the badNonce-behind-a-load-balancer problem).
Every response carries a fresh nonce, so they are stored a batch at a time: one
statement for `batch` responses. A batch older than a tenth of the lifetime is dropped
unused (its nonces simply expire), so no response hands out a nearly expired nonce.

Responses that find no nonce ready wait for one refill together, and a refill that
fails (the database out of reach) fails every one of them at once: they never retry
it one after the other, each waiting for the database's timeout behind the last.

Expired nonces are deleted by ``purge_expired``, a job of the cluster's background
work (``background.py``: the lease holder, every period). Every response mints a
nonce, unauthenticated ones too, so a busy or probed server leaves millions behind;
one DELETE of them all held SQLite's event loop for 5.5 s (a million rows) and made
the other workers' refills time out. So the purge goes ``PURGE_BATCH`` nonces per
statement, and lets the loop's other tasks run between two statements.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from acme_ca.authority.background import in_batches
from acme_ca.clock import Clock
from acme_ca.store.cluster import NonceStore

PURGE_BATCH = 1000  # per statement: SQLite takes 1 ms (4 ms at worst) on a busy 2-core machine


class NonceService:
    """Issues single-use nonces that expire after ``lifetime``."""

    def __init__(
        self,
        store: NonceStore,
        clock: Clock,
        lifetime: timedelta = timedelta(minutes=30),
        batch: int = 32,
    ) -> None:
        if lifetime <= timedelta(0):
            raise ValueError("nonce lifetime must be positive")
        self._store = store
        self._clock = clock
        self._lifetime = lifetime
        self._batch = batch
        self._ready: list[str] = []
        self._ready_since = clock.now()
        self._refilling: asyncio.Task[None] | None = None

    async def new(self) -> str:
        """A fresh nonce: 128 random bits, base64url (RFC 8555 6.5.1), never handed out
        twice, already stored when returned. The store's error if a refill fails."""
        if self._clock.now() - self._ready_since > self._lifetime / 10:
            self._ready.clear()
        while not self._ready:
            if self._refilling is None:
                self._refilling = asyncio.get_running_loop().create_task(self._refill())
            await asyncio.shield(self._refilling)  # a waiter cancelled leaves it to others
        return self._ready.pop()

    async def _refill(self) -> None:
        try:
            now = self._clock.now()
            fresh = [secrets.token_urlsafe(16) for _ in range(self._batch)]
            await self._store.add_nonces(fresh, now + self._lifetime)
            self._ready, self._ready_since = fresh, now
        finally:
            self._refilling = None

    async def consume(self, nonce: str) -> bool:
        """True once for a nonce this CA issued and that has not expired; else False."""
        return await self._store.consume_nonce(nonce, self._clock.now())

    async def purge_expired(self, batch: int = PURGE_BATCH) -> int:
        """Delete the nonces expired now, ``batch`` per statement, yielding to the
        loop's other tasks between two; how many were deleted. What is left when the
        background work's time runs out goes next period."""
        return await in_batches(self._store.purge_expired_nonces, self._clock.now(), batch)
