"""Appending to the audit log (``domain/audit.py``, ``store/audit.py``): what was done,
with who did it and from where taken from the current ``Origin`` (``domain/origin.py``:
the request's account or admin certificate and client IP, the command line's OS user).

Every service that changes what the audit log records takes an ``Auditor`` (its
constructor's ``auditor``; by default one on its own store) and calls ``record`` once
the change is stored, never before and never for a refused request. No caller names
the actor: the front end that took the request set it (``api/middleware``, the JWS
check, the admin guard), or the command line (``cli/main``).

An entry is appended after the change it records has been stored. If the store cannot
take the entry then (the database went away in between), the change stands and the
entry is written to the log at ERROR level, whole, so that it is not lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from acme_ca.clock import Clock
from acme_ca.domain.audit import AuditAction, AuditEntry, AuditEvent
from acme_ca.domain.origin import current_origin
from acme_ca.errors import StoreError
from acme_ca.store.audit import AuditStore

log = logging.getLogger("acme_ca.audit")


class Auditor:
    """Appends to the audit log what the current origin did."""

    def __init__(self, store: AuditStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def record(
        self,
        action: AuditAction,
        *,
        identifiers: Iterable[str] = (),
        serial: str | None = None,
        details: Mapping[str, str | int | bool | None] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry | None:
        """Append ``action`` by the current origin's actor from its client IP, at ``at``
        (default: now); the entry, or None when the store could not take it (then
        logged at ERROR, whole)."""
        origin = current_origin()
        event = AuditEvent(action, origin.actor, origin.client_ip, tuple(identifiers),
                           serial, dict(details or {}))
        try:
            return await self._store.append_audit(event, at or self._clock.now())
        except StoreError as exc:
            log.error("the audit log could not take an entry (%s); the entry: %s", exc, event)
            return None
