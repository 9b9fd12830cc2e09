"""The audit log's entries and the hash chain that makes it tamper-evident.

Every issuance, revocation, account creation, deactivation and key change, use of an
External Account Binding key, and action of an operator is appended to the audit log
in the store (``store/audit.py``) as an ``AuditEntry``: who (an ACME account, the
holder of a certificate's key revoking it, an admin certificate, an OS user on the
command line, or the CA itself: the ``*_actor`` spellings), from which client IP, on
which identifiers and serial, when, and what.

Each entry carries ``hash`` = SHA-256 of its canonical form, which includes the hash of
the entry before it (``prev_hash``; ``GENESIS`` for the first) and its sequence number.
What the chain proves by itself: an entry edited or deleted *without re-hashing the
entries after it* (an accident, a careless edit) breaks it, and ``verify_chain`` finds
where. What it does not prove: the hash has no key, so whoever can write the table can
edit an entry and re-hash every entry after it, or delete the newest entries, and the
chain still verifies. Only a head kept outside the database catches that: the line
every append writes on the logger ``acme_ca.audit.head`` (``store/audit.witness``: a
log collector keeps it), or the head (``seq`` and ``hash``) an operator noted. Pass it
to ``verify_chain`` as ``expected_head``: a chain that does not reach that entry with
that hash is reported broken there. The database refuses UPDATE and DELETE on the
table (migration 0010's triggers), so tampering takes DDL, never an accident.

An entry is also broken when the store's text is not what the store writes (duplicate
JSON keys, escaped identifiers, a time with another offset: ``AuditEntry.defect``, set
by the reader), or when it cannot be read at all: what is hashed is the parsed value,
so such text would otherwise verify while saying something else to another reader.

The hash is computed by the store inside the transaction that appends the entry (it
needs the previous entry's hash), with ``chain_hash`` here: one definition for both
backends and for the verifier.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

GENESIS = "0" * 64  # the prev_hash of the first entry


class AuditAction(StrEnum):
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_DEACTIVATED = "account.deactivated"
    ACCOUNT_KEY_CHANGED = "account.key_changed"
    EAB_KEY_USED = "eab.key_used"
    EAB_KEY_CREATED = "eab.key_created"
    EAB_KEY_REVOKED = "eab.key_revoked"
    CERTIFICATE_ISSUED = "certificate.issued"
    CERTIFICATE_REVOKED = "certificate.revoked"
    CERTIFICATE_RENEW_EARLY = "certificate.renew_early"
    ADMIN_CERTIFICATE_ISSUED = "admin.certificate_issued"


# Who acted, as ``AuditEvent.actor`` spells it.
def account_actor(account_id: str) -> str:
    return f"account:{account_id}"


def admin_actor(name: str, serial: str) -> str:
    """An operator authenticated by an admin certificate (its subject's name, serial)."""
    return f"admin:{name}:{serial}"


def cli_actor(user: str) -> str:
    """An operator on the command line (the OS user; ``cli/audit.who``)."""
    return f"cli:{user}"


def key_actor(thumbprint: str) -> str:
    """Whoever holds a key that is no account's (a revocation signed with the
    certificate's own key, RFC 8555 7.6): its RFC 7638 thumbprint."""
    return f"key:{thumbprint}"


SYSTEM_ACTOR = "system"  # the CA itself (background work)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What is appended: the store gives it a ``seq``, a time and its hashes."""

    action: AuditAction
    actor: str
    client_ip: str | None = None
    identifiers: tuple[str, ...] = ()
    serial: str | None = None
    details: Mapping[str, str | int | bool | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int  # 1, 2, 3 ... without gaps
    at: datetime
    action: str
    actor: str
    client_ip: str | None
    identifiers: tuple[str, ...]
    serial: str | None
    details: Mapping[str, str | int | bool | None]
    prev_hash: str
    hash: str
    # Set by the reader when the stored text is not what the store writes, or cannot be
    # read (then the other fields are what could be read): a break (``verify_chain``).
    defect: str | None = None


def time_text(at: datetime) -> str:
    """The one spelling of an entry's time in its hash: UTC, microseconds, 'Z'."""
    if at.tzinfo is None:
        raise ValueError("audit times are timezone-aware")
    u = at.astimezone(UTC)  # strftime's "%Y-%m-%dT%H:%M:%S.%fZ", at a fifth of its cost
    return (f"{u.year}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
            f".{u.microsecond:06d}Z")


def details_text(details: Mapping[str, str | int | bool | None]) -> str:
    """The canonical JSON of ``details`` (what the store keeps, and what is hashed)."""
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def chain_hash(seq: int, at: datetime, event: AuditEvent | AuditEntry, prev_hash: str) -> str:
    """SHA-256 (hex) of the entry ``seq`` made of ``event`` at ``at`` after ``prev_hash``:
    canonical JSON (sorted keys, no spaces, ASCII) of every field but the hash itself."""
    canonical = json.dumps(
        {
            "seq": seq,
            "at": time_text(at),
            "action": str(event.action),
            "actor": event.actor,
            "client_ip": event.client_ip,
            "identifiers": list(event.identifiers),
            "serial": event.serial,
            "details": json.loads(details_text(event.details)),
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where the chain stops verifying, and why (one line for an operator)."""

    seq: int
    reason: str


def verify_chain(
    entries: Iterable[AuditEntry],
    *,
    after_seq: int = 0,
    after_hash: str = GENESIS,
    expected_head: tuple[int, str] | None = None,
) -> tuple[AuditEntry | None, ChainBreak | None]:
    """Walk ``entries`` (in ``seq`` order, starting right after ``after_seq`` whose hash
    is ``after_hash``): the last entry that verified and the first break, if any. An
    entry breaks the chain when its ``seq`` is not the next one (deleted or inserted
    entries), its stored text is not what the store writes or cannot be read
    (``defect``), its ``prev_hash`` is not the hash before it, or its ``hash`` is not
    ``chain_hash`` of its own fields (edited).

    ``expected_head`` (seq, hash), a head kept outside the database (the witness line,
    a noted head): the chain must reach that entry with exactly that hash, or it is
    broken there (its newest entries were deleted, or it was re-hashed from some entry
    on). Entries after it are fine (appended since). For a log read a page at a time,
    pass it with the page that holds it, then once more with no entries, ``after_seq``
    and ``after_hash`` the last entry verified, to catch a log that ends before it."""
    last: AuditEntry | None = None
    expected_seq, expected_prev = after_seq + 1, after_hash
    for entry in entries:
        broken = _entry_break(entry, expected_seq, expected_prev, expected_head)
        if broken is not None:
            return last, broken
        last, expected_seq, expected_prev = entry, entry.seq + 1, entry.hash
    if expected_head is not None:
        head_seq, head_hash = expected_head
        if expected_seq - 1 < head_seq:
            return last, ChainBreak(head_seq, (
                f"entry {head_seq}, the head you kept, is missing: the log ends at entry "
                f"{expected_seq - 1}, so its newest entries were deleted"))
        if expected_seq - 1 == head_seq and expected_prev != head_hash:
            return last, _not_the_head(head_seq, expected_prev, head_hash)
    return last, None


def _entry_break(entry: AuditEntry, seq: int, prev: str,
                 head: tuple[int, str] | None) -> ChainBreak | None:
    if entry.seq != seq:
        return ChainBreak(entry.seq, f"entry {seq} is missing (found {entry.seq} next)")
    if entry.defect is not None:
        return ChainBreak(entry.seq, f"entry {entry.seq} {entry.defect}")
    if entry.prev_hash != prev:
        return ChainBreak(entry.seq, f"entry {entry.seq} does not follow the hash of entry "
                          f"{entry.seq - 1}: an entry before it was edited or replaced")
    if chain_hash(entry.seq, entry.at, entry, entry.prev_hash) != entry.hash:
        return ChainBreak(entry.seq, f"entry {entry.seq} was edited: its hash does not "
                          "match its content")
    if head is not None and entry.seq == head[0] and entry.hash != head[1]:
        return _not_the_head(entry.seq, entry.hash, head[1])
    return None


def _not_the_head(seq: int, found: str, kept: str) -> ChainBreak:
    return ChainBreak(seq, f"entry {seq} is not the head you kept: its hash is "
                      f"{found[:16]}..., not {kept[:16]}...: the log was rewritten from there")
