"""Appending to the audit log (``domain/audit.py``, ``store/audit.py``): what was done,
with who did it and from where taken from the current ``Origin`` (``domain/origin.py``:
the request's account or admin certificate and client IP, the command line's OS user).

Every service that changes what the audit log records takes an ``Auditor`` (its
constructor's ``auditor``; by default one on its own store) and calls ``record`` once
the change is stored, never before and never for a refused request. No caller names
the actor: the front end that took the request set it (``api/middleware``, the JWS
check, the admin guard), or the command line (``cli/main``).

An entry is appended after the change it records has been stored, in a transaction of
its own: the change and its entry are not atomic. If the store cannot take the entry
then (the database went away in between; or anything else fails the append), the
change stands and the entry is written to the log at ERROR level, whole, with its time,
as JSON, so that an outage loses no entry; ``record`` never raises, so a change that
is stored is never answered as a failure. A crash between the two commits (kill -9,
power loss) loses the entry with no line: the one case the sweeper repairs is an
issuance whose order it completes (``sweeper.py`` records it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from acme_ca.clock import Clock
from acme_ca.domain.audit import AuditAction, AuditEntry, AuditEvent, time_text
from acme_ca.domain.origin import current_origin
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
        (default: now); the entry, or None when the store could not take it, for any
        reason (then logged at ERROR, whole: ``lost``)."""
        origin = current_origin()
        event = AuditEvent(action, origin.actor, origin.client_ip, tuple(identifiers),
                           serial, dict(details or {}))
        moment = at or self._clock.now()
        try:
            return await self._store.append_audit(event, moment)
        except Exception as exc:  # the change is stored: its answer must not fail now
            log.error("the audit log could not take an entry (%s: %s); the entry: %s",
                      type(exc).__name__, exc, lost(event, moment))
            return None


def lost(event: AuditEvent, at: datetime) -> str:
    """``event`` at ``at`` as one line of JSON (ASCII: no control character or lone
    surrogate reaches the log as such), every field an entry would have but its place
    in the chain."""
    try:
        when = time_text(at)
    except ValueError:  # a naive time: kept as given
        when = at.isoformat()
    return json.dumps({"at": when, "action": str(event.action), "actor": event.actor,
                       "client_ip": event.client_ip, "identifiers": list(event.identifiers),
                       "serial": event.serial, "details": dict(event.details)},
                      sort_keys=True, ensure_ascii=True, default=repr)
