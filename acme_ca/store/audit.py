"""The audit log in the store: an append-only, hash-chained list of what was done
(``domain/audit.py``). Entries are never updated or deleted by the CA (retention
keeps them all); ``acme-ca audit verify`` walks the chain. ``next_entry`` makes the
entry every backend appends, so both hash it alike, once ``check_event`` took it;
``entry_values`` are the columns
of audit_log it is stored in, and ``stored_entry`` reads it back from them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from acme_ca.domain.audit import (
    GENESIS,
    AuditEntry,
    AuditEvent,
    chain_hash,
    details_text,
    time_text,
)


class AuditStore(Protocol):
    async def append_audit(self, event: AuditEvent, at: datetime) -> AuditEntry:
        """Append ``event`` at ``at`` as the next entry: ``seq`` one more than the last
        (1 for the first), ``prev_hash`` the last entry's hash (``GENESIS`` for the
        first), ``hash`` = ``chain_hash`` of them. Appends are serialised across
        processes and replicas (each sees the entry before it): no two entries share a
        ``seq`` and the chain never forks. The entry as stored (``at`` in UTC), equal to
        what ``audit_entries`` reads back. ``ValueError`` (``check_event``), before
        anything is written, for a naive ``at`` or a NUL in a text field."""

    async def audit_entries(
        self, *, after_seq: int = 0, since: datetime | None = None, limit: int = 1000
    ) -> list[AuditEntry]:
        """Entries with ``seq`` > ``after_seq`` (and ``at`` >= ``since`` if given), in
        ``seq`` order, at most ``limit``: read the whole log a page at a time.
        ``ValueError`` if ``limit`` < 1."""

    async def last_audit_entry(self) -> AuditEntry | None:
        """The newest entry (the chain's head); None while the log is empty."""


def check_event(event: AuditEvent, at: datetime) -> None:
    """``ValueError`` for what no backend may store: a naive ``at``, or a NUL character
    in a field kept as text (PostgreSQL text cannot hold one; identifiers and details
    are JSON, where it is escaped)."""
    time_text(at)
    for name in ("actor", "client_ip", "serial"):
        if "\x00" in (getattr(event, name) or ""):
            raise ValueError(f"the audit event's {name} holds a NUL character")


def next_entry(event: AuditEvent, at: datetime, last: AuditEntry | None) -> AuditEntry:
    """The entry ``event`` at ``at`` becomes after ``last`` (None: it is the first),
    hashed with ``chain_hash``: what every backend's ``append_audit`` stores, computed
    once it holds the newest entry in the transaction that appends. Its ``at`` is in
    UTC and its ``details`` in their canonical form, as they read back."""
    seq, prev = (1, GENESIS) if last is None else (last.seq + 1, last.hash)
    moment = at.astimezone(UTC)
    return AuditEntry(seq=seq, at=moment, action=str(event.action), actor=event.actor,
                      client_ip=event.client_ip, identifiers=tuple(event.identifiers),
                      serial=event.serial, details=json.loads(details_text(event.details)),
                      prev_hash=prev, hash=chain_hash(seq, moment, event, prev))


def entry_values(entry: AuditEntry, at: object) -> tuple[object, ...]:
    """The columns of audit_log, in the order of the table, that hold ``entry``, with
    ``at`` its time as the backend stores it; identifiers as a JSON array, details as
    their canonical JSON (``details_text``)."""
    return (entry.seq, at, entry.action, entry.actor, entry.client_ip,
            json.dumps(list(entry.identifiers)), entry.serial, details_text(entry.details),
            entry.prev_hash, entry.hash)


def stored_entry(row: Any, at: datetime) -> AuditEntry:
    """The entry a row of audit_log holds (a ``sqlite3.Row`` or an ``asyncpg.Record``:
    columns by name), with its ``at`` as the backend reads its time."""
    return AuditEntry(seq=row["seq"], at=at, action=row["action"], actor=row["actor"],
                      client_ip=row["client_ip"],
                      identifiers=tuple(json.loads(row["identifiers"])), serial=row["serial"],
                      details=json.loads(row["details"]), prev_hash=row["prev_hash"],
                      hash=row["hash"])
