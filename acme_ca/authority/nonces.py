"""Anti-replay nonces (RFC 8555 6.5): issued here, remembered by the store.

The nonces live behind the store interface, so a nonce issued by one process or
replica is accepted by any other (the badNonce-behind-a-load-balancer problem).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from acme_ca.clock import Clock
from acme_ca.store.acme_base import NonceStore


class NonceService:
    """Issues single-use nonces that expire after ``lifetime``."""

    def __init__(
        self, store: NonceStore, clock: Clock, lifetime: timedelta = timedelta(minutes=30)
    ) -> None:
        if lifetime <= timedelta(0):
            raise ValueError("nonce lifetime must be positive")
        self._store = store
        self._clock = clock
        self._lifetime = lifetime

    async def new(self) -> str:
        """A fresh nonce: 128 random bits, base64url (RFC 8555 6.5.1)."""
        nonce = secrets.token_urlsafe(16)
        await self._store.add_nonce(nonce, self._clock.now() + self._lifetime)
        return nonce

    async def consume(self, nonce: str) -> bool:
        """True once for a nonce this CA issued and that has not expired; else False."""
        return await self._store.consume_nonce(nonce, self._clock.now())
