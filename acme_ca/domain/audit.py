"""The audit log's entries and the hash chain that makes it tamper-evident.

Every issuance, revocation, account creation, deactivation and key change, use of an
External Account Binding key, and action of an operator is appended to the audit log
in the store (``store/audit.py``) as an ``AuditEntry``: who (an ACME account, an admin
certificate, an OS user on the command line), from which client IP, on which
identifiers and serial, when, and what.

Each entry carries ``hash`` = SHA-256 of its canonical form, which includes the hash of
the entry before it (``prev_hash``; ``GENESIS`` for the first) and its sequence number.
Editing an entry changes its hash, so the next entry's ``prev_hash`` no longer matches;
deleting one leaves a gap in ``seq``. ``verify_chain`` finds both. Deleting the newest
entries leaves a shorter chain that verifies: to catch that, keep the head (``seq`` and
``hash`` that ``acme-ca audit verify`` prints) somewhere the database's writers cannot
reach, and pass it back to ``verify_chain`` as ``expected_head``.

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


def time_text(at: datetime) -> str:
    """The one spelling of an entry's time in its hash: UTC, microseconds, 'Z'."""
    if at.tzinfo is None:
        raise ValueError("audit times are timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    entries: Iterable[AuditEntry], *, after_seq: int = 0, after_hash: str = GENESIS
) -> tuple[AuditEntry | None, ChainBreak | None]:
    """Walk ``entries`` (in ``seq`` order, starting right after ``after_seq`` whose hash
    is ``after_hash``): the last entry that verified and the first break, if any. An
    entry breaks the chain when its ``seq`` is not the next one (deleted or inserted
    entries), its ``prev_hash`` is not the hash before it, or its ``hash`` is not
    ``chain_hash`` of its own fields (edited)."""
    last: AuditEntry | None = None
    expected_seq, expected_prev = after_seq + 1, after_hash
    for entry in entries:
        if entry.seq != expected_seq:
            return last, ChainBreak(
                entry.seq, f"entry {expected_seq} is missing (found {entry.seq} next)")
        if entry.prev_hash != expected_prev:
            return last, ChainBreak(
                entry.seq, f"entry {entry.seq} does not follow the hash of entry "
                f"{entry.seq - 1}: an entry before it was edited or replaced")
        if chain_hash(entry.seq, entry.at, entry, entry.prev_hash) != entry.hash:
            return last, ChainBreak(entry.seq, f"entry {entry.seq} was edited: its hash "
                                    "does not match its content")
        last, expected_seq, expected_prev = entry, entry.seq + 1, entry.hash
    return last, None
