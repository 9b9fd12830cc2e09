"""The audit log in the store: an append-only, hash-chained list of what was done
(``domain/audit.py``). Entries are never updated or deleted by the CA (retention
keeps them all); ``acme-ca audit verify`` walks the chain."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from acme_ca.domain.audit import AuditEntry, AuditEvent


class AuditStore(Protocol):
    async def append_audit(self, event: AuditEvent, at: datetime) -> AuditEntry:
        """Append ``event`` at ``at`` as the next entry: ``seq`` one more than the last
        (1 for the first), ``prev_hash`` the last entry's hash (``GENESIS`` for the
        first), ``hash`` = ``chain_hash`` of them. Appends are serialised across
        processes and replicas (each sees the entry before it): no two entries share a
        ``seq`` and the chain never forks. The entry as stored."""

    async def audit_entries(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """Entries with ``seq`` > ``after_seq`` (and ``at`` >= ``since`` if given), in
        ``seq`` order, at most ``limit``: read the whole log a page at a time."""

    async def last_audit_entry(self) -> AuditEntry | None:
        """The newest entry (the chain's head); None while the log is empty."""
