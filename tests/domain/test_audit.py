"""The audit log's hash chain (acme_ca/domain/audit.py): issue 13 item 4 asks for an
audit log that is tamper-evident, "each entry carries a hash chained to the previous
one, and `acme-ca audit verify` finds an edited or deleted entry". ``verify_chain`` is
that finding; these tests tamper with a chain in every way an editor of the database
could and check that it is found, and where."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from acme_ca.domain.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditEvent,
    ChainBreak,
    chain_hash,
    time_text,
    verify_chain,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def chain(length: int) -> list[AuditEntry]:
    """``length`` entries as a store appends them: seq 1.., each hashed after the last."""
    entries: list[AuditEntry] = []
    prev = GENESIS
    for seq in range(1, length + 1):
        event = AuditEvent(AuditAction.CERTIFICATE_ISSUED, f"account:acct-{seq}",
                           f"192.0.2.{seq}", (f"www{seq}.example.test",), f"0{seq:x}",
                           {"profile": "server", "n": seq, "renewal": False, "note": None})
        at = T0 + timedelta(seconds=seq)
        digest = chain_hash(seq, at, event, prev)
        entries.append(AuditEntry(seq, at, str(event.action), event.actor, event.client_ip,
                                  event.identifiers, event.serial, dict(event.details),
                                  prev, digest))
        prev = digest
    return entries


def test_an_untouched_chain_verifies_to_its_last_entry():
    entries = chain(5)
    assert verify_chain(entries) == (entries[-1], None)


def test_the_empty_chain_verifies_with_no_head():
    """An empty log (nothing appended yet) is not a break: no head, no break."""
    assert verify_chain([]) == (None, None)


# Every field that the hash covers, edited to another value of its type.
EDITS = {
    "at": T0 + timedelta(seconds=3, microseconds=1),
    "action": str(AuditAction.CERTIFICATE_REVOKED),
    "actor": "account:someone-else",
    "client_ip": None,
    "identifiers": ("www3.example.test", "evil.example.test"),
    "serial": "ff",
    "details": {"profile": "server", "n": 3, "renewal": True, "note": None},
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_an_edited_field_breaks_the_chain_at_its_entry(field: str):
    """Issue 13 item 4: an edited entry is found. Each field the hash covers, edited in
    entry 3 of 5 (its stored hash left as it was), breaks the chain at 3; 1 and 2 still
    verify."""
    entries = chain(5)
    entries[2] = replace(entries[2], **{field: EDITS[field]})
    last, broken = verify_chain(entries)
    assert last == entries[1]
    assert broken is not None and broken.seq == 3 and "edited" in broken.reason


def test_an_edited_seq_breaks_the_chain():
    """Renumbering an entry (to hide a deletion) is found as a gap at that entry."""
    entries = chain(3)
    entries[2] = replace(entries[2], seq=4)
    assert verify_chain(entries) == (entries[1], ChainBreak(4, "entry 3 is missing "
                                                               "(found 4 next)"))


def test_a_re_hashed_edited_entry_is_found_by_the_next_entrys_prev_hash():
    """Issue 13 item 4: an editor who also recomputes the edited entry's own hash makes
    that entry verify alone, but the entry after it still holds the old hash as its
    prev_hash."""
    entries = chain(5)
    edited = replace(entries[2], actor="account:someone-else")
    entries[2] = replace(edited, hash=chain_hash(3, edited.at, edited, edited.prev_hash))
    last, broken = verify_chain(entries)
    assert last == entries[2]
    assert broken is not None and broken.seq == 4
    assert "does not follow the hash of entry 3" in broken.reason


def test_a_deleted_middle_entry_is_found():
    """Issue 13 item 4: a deleted entry is found (a gap in seq)."""
    entries = chain(5)
    del entries[2]
    assert verify_chain(entries) == (entries[1], ChainBreak(4, "entry 3 is missing "
                                                               "(found 4 next)"))


def test_a_deleted_first_entry_is_found():
    """Deleting the oldest entry leaves a chain that starts at 2: found, with no entry
    verified before it."""
    entries = chain(3)
    assert verify_chain(entries[1:]) == (None, ChainBreak(2, "entry 1 is missing "
                                                             "(found 2 next)"))


def test_a_deleted_first_entry_renumbered_is_found_by_its_prev_hash():
    """Deleting entry 1 and renumbering the rest from 1 (hashes recomputed) still
    fails: the new first entry's prev_hash is not GENESIS, or if it is made GENESIS,
    every later prev_hash is wrong unless the whole chain is re-hashed (which only the
    head kept elsewhere, ``expected_head``, can catch)."""
    entries = [replace(e, seq=e.seq - 1) for e in chain(3)[1:]]
    entries[0] = replace(entries[0], hash=chain_hash(1, entries[0].at, entries[0],
                                                     entries[0].prev_hash))
    last, broken = verify_chain(entries)
    assert last is None and broken is not None and broken.seq == 1
    assert "does not follow" in broken.reason


def test_swapped_entries_are_found():
    """Two entries swapped in place (each keeping its seq as the rows are read in seq
    order, their contents exchanged) break the chain at the first of them."""
    entries = chain(5)
    a, b = entries[1], entries[2]
    entries[1] = replace(b, seq=2)
    entries[2] = replace(a, seq=3)
    last, broken = verify_chain(entries)
    assert last == entries[0]
    assert broken is not None and broken.seq == 2


def test_swapped_entries_with_their_seqs_are_found():
    """Two entries swapped with their own seqs (read in the order given) are a gap."""
    entries = chain(4)
    entries[1], entries[2] = entries[2], entries[1]
    last, broken = verify_chain(entries)
    assert last == entries[0] and broken == ChainBreak(3, "entry 2 is missing "
                                                          "(found 3 next)")


def test_verification_resumes_after_a_known_entry():
    """A verifier that kept seq and hash of an entry (the head it printed last time)
    checks only what came after it; a wrong kept hash is a break at the next entry."""
    entries = chain(5)
    assert verify_chain(entries[3:], after_seq=3, after_hash=entries[2].hash) == (
        entries[-1], None)
    last, broken = verify_chain(entries[3:], after_seq=3, after_hash=entries[1].hash)
    assert last is None and broken is not None and broken.seq == 4


def test_the_hash_does_not_depend_on_the_time_zone_or_the_details_order():
    """One spelling of an entry (``time_text``, canonical JSON): the same moment in
    another zone and the same details in another order hash alike, so a store may
    return them in its own form and still verify."""
    event = AuditEvent(AuditAction.ACCOUNT_CREATED, "account:a", details={"b": 1, "a": 2})
    shuffled = replace(event, details={"a": 2, "b": 1})
    elsewhere = T0.astimezone(timezone(timedelta(hours=2)))
    assert chain_hash(1, T0, event, GENESIS) == chain_hash(1, elsewhere, shuffled, GENESIS)
    assert chain_hash(1, T0, event, GENESIS) != chain_hash(2, T0, event, GENESIS)
    assert chain_hash(1, T0, event, GENESIS) != chain_hash(1, T0, event, "1" * 64)


@pytest.mark.parametrize(("at", "text"), [
    (datetime(2026, 12, 7, 3, 4, 5, 7, tzinfo=UTC), "2026-12-07T03:04:05.000007Z"),
    (datetime(2026, 1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=2))),
     "2025-12-31T23:00:00.000000Z"),
    (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999Z"),
])
def test_the_time_is_hashed_as_it_always_was(at: datetime, text: str) -> None:
    """The spelling every stored chain was hashed with (strftime's "%Y-%m-%dT%H:%M:%S.%fZ"
    in UTC): another one would break every chain already written at its first entry."""
    assert time_text(at) == text == at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_naive_time_cannot_be_hashed():
    event = AuditEvent(AuditAction.ACCOUNT_CREATED, "account:a")
    with pytest.raises(ValueError, match="timezone-aware"):
        chain_hash(1, datetime(2026, 1, 1), event, GENESIS)


def test_a_head_kept_elsewhere_catches_a_cut_or_rehashed_log() -> None:
    """Issue 13 item 4, review finding F1 (b): the chain alone accepts its newest
    entries deleted; against the head kept (``expected_head``) that is a break, as is
    another hash at the head's seq. Entries appended after the head are fine, and a log
    read a page at a time is checked with the page holding the head, then once at the
    end with no entries."""
    entries = chain(5)
    head = (3, entries[2].hash)
    assert verify_chain(entries, expected_head=head) == (entries[-1], None)
    assert verify_chain(entries[:3], expected_head=head) == (entries[2], None)
    last, broken = verify_chain(entries[:2], expected_head=head)
    assert last == entries[1] and broken is not None and broken.seq == 3
    assert "missing" in broken.reason
    last, broken = verify_chain(entries, expected_head=(3, "f" * 64))
    assert last == entries[1] and broken is not None and broken.seq == 3
    assert "not the head you kept" in broken.reason
    assert verify_chain([], after_seq=3, after_hash=entries[2].hash,
                        expected_head=head) == (None, None)
    assert verify_chain([], after_seq=3, after_hash="f" * 64,
                        expected_head=head)[1] is not None
    assert verify_chain([], after_seq=2, after_hash=entries[1].hash,
                        expected_head=head)[1] is not None


def test_an_entry_the_reader_marked_is_a_break() -> None:
    """Review findings F5 and F6: an entry whose stored text is not the store's own, or
    cannot be read, breaks the chain even when its hash would match."""
    entries = chain(3)
    marked = [entries[0], replace(entries[1], defect="cannot be read (bad JSON)"), entries[2]]
    assert verify_chain(marked) == (entries[0], ChainBreak(2, "entry 2 cannot be read (bad JSON)"))
