"""The audit log in the store: an append-only, hash-chained list of what was done
(``domain/audit.py``). Entries are never updated or deleted by the CA (retention
keeps them all), and the database refuses it (migration 0010's triggers: UPDATE and
DELETE, and TRUNCATE on PostgreSQL); ``acme-ca audit verify`` walks the chain.
``next_entry`` makes the entry every backend appends, so both hash it alike, once
``check_event`` took it; ``entry_values`` are the columns of audit_log it is stored
in, and ``stored_entry`` reads it back from them, marking an entry whose stored text
is not what ``entry_values`` writes, or that cannot be read (``AuditEntry.defect``),
so that ``verify_chain`` reports it instead of hashing what a parser made of it.

Every append, once committed, writes one INFO line on the logger
``acme_ca.audit.head`` (``witness``): the new head's seq and hash. A log collector
that keeps these lines holds a head outside the database, which catches what the
chain alone cannot: a log re-hashed from an edited entry on, or its newest entries
deleted (``acme-ca audit verify --expect-head SEQ:HASH``).

On PostgreSQL, the CA's role needs only INSERT and SELECT on audit_log (the audit
lock is an advisory lock, which needs no privilege): grant it no more, and keep the
owner of the table (who may drop the triggers) another role."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
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

head_log = logging.getLogger("acme_ca.audit.head")
UNREADABLE_AT = datetime.min.replace(tzinfo=UTC)  # the time of an entry that cannot be read


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
    """``ValueError`` for what a backend could not store: a naive ``at``; a NUL
    character in a field kept as text (PostgreSQL text cannot hold one; identifiers
    and details are JSON, where it is escaped); any text, identifiers and details' keys
    and values included, that is not valid Unicode (a lone surrogate, as a name decoded
    with surrogateescape holds): the drivers encode strict UTF-8."""
    time_text(at)
    for name in ("actor", "client_ip", "serial"):
        if "\x00" in (getattr(event, name) or ""):
            raise ValueError(f"the audit event's {name} holds a NUL character")
    texts = [("action", str(event.action)), ("actor", event.actor),
             ("client_ip", event.client_ip), ("serial", event.serial),
             *(("identifiers", each) for each in event.identifiers),
             *(("details", each) for pair in event.details.items() for each in pair)]
    for name, text in texts:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"the audit event's {name} is not valid Unicode text: "
                                 f"{text.encode('utf-8', 'backslashreplace').decode()}"
                                 ) from None


def witness(entry: AuditEntry) -> None:
    """The line an append writes once its entry is committed (module docstring)."""
    head_log.info("audit log head %d:%s", entry.seq, entry.hash)


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


def stored_entry(row: Any, at: Callable[[Any], datetime],
                 at_text: Callable[[datetime], Any] | None = None) -> AuditEntry:
    """The entry a row of audit_log holds (a ``sqlite3.Row`` or an ``asyncpg.Record``:
    columns by name); ``at`` reads the backend's time column, ``at_text`` (a backend
    that keeps time as text) writes it back as the store does. An entry whose stored
    text is not what ``entry_values`` (and ``at_text``) would write for what it reads
    as, or which cannot be read, has a ``defect``."""
    try:
        moment = at(row["at"])
        time_text(moment)  # a naive time cannot be hashed
        identifiers, details = json.loads(row["identifiers"]), json.loads(row["details"])
        if not isinstance(identifiers, list) or not all(isinstance(i, str) for i in identifiers):
            raise ValueError("its identifiers are not a JSON array of text")
        if not isinstance(details, dict):
            raise ValueError("its details are not a JSON object")
    except (ValueError, TypeError, OverflowError) as exc:
        return AuditEntry(seq=row["seq"], at=UNREADABLE_AT, action=row["action"],
                          actor=row["actor"], client_ip=row["client_ip"], identifiers=(),
                          serial=row["serial"], details={}, prev_hash=row["prev_hash"],
                          hash=row["hash"], defect=f"cannot be read ({exc})")
    entry = AuditEntry(seq=row["seq"], at=moment, action=row["action"], actor=row["actor"],
                       client_ip=row["client_ip"], identifiers=tuple(identifiers),
                       serial=row["serial"], details=details, prev_hash=row["prev_hash"],
                       hash=row["hash"])
    defect = _not_as_written(row, entry, at_text)
    return entry if defect is None else replace(entry, defect=defect)


def _not_as_written(row: Any, entry: AuditEntry,
                    at_text: Callable[[datetime], Any] | None) -> str | None:
    """Which stored text differs from what the store writes for ``entry``, if any."""
    written = entry_values(entry, row["at"] if at_text is None else at_text(entry.at))
    for column, value in zip(("identifiers", "details", "at"), (written[5], written[7],
                                                                 written[1]), strict=True):
        if row[column] != value:
            return (f"is not stored as the CA writes it (its {column} text is not the "
                    "canonical form of what it says): edited in the database")
    return None
