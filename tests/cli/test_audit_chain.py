"""``cli/audit_chain``: the audit log's hash chain verified a page at a time (issue 13,
item 4), the head an operator kept checked, and the JSON Lines of `audit export` read
back to the same entries (hashes verify)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from acme_ca.cli.audit_chain import ChainWalk, Head, entry_from_json, entry_json, parse_head
from acme_ca.domain.audit import GENESIS, AuditAction, AuditEntry, AuditEvent
from acme_ca.errors import ConfigError
from acme_ca.store.audit import next_entry

T0 = datetime(2026, 12, 1, 12, 0, 0, 654321, tzinfo=UTC)


def chain(length: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for n in range(length):
        event = AuditEvent(AuditAction.CERTIFICATE_REVOKED, "cli:alice", None,
                           (f"h{n}.bluerobin.local",), f"{n:x}", {"reason": "keyCompromise"})
        entries.append(next_entry(event, T0 + timedelta(minutes=n),
                                  entries[-1] if entries else None))
    return entries


def walk(entries: list[AuditEntry], size: int, expected: Head | None = None) -> ChainWalk:
    walker = ChainWalk(expected)
    for start in range(0, len(entries), size):
        if not walker.feed(entries[start:start + size]):
            break
    walker.finish()
    return walker


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_pages_of_any_size_verify_the_same(size: int) -> None:
    entries = chain(7)
    walker = walk(entries, size, Head(4, entries[3].hash))
    assert walker.broken is None and walker.head == Head(7, entries[-1].hash)
    assert walker.entries == 7


@pytest.mark.parametrize("size", [1, 2, 3])
def test_a_deletion_at_a_page_boundary_is_found(size: int) -> None:
    entries = chain(7)
    del entries[3]  # entry 4
    walker = walk(entries, size)
    assert walker.broken is not None and walker.broken.seq == 5
    assert walker.broken.reason == "entry 4 is missing (found 5 next)"
    assert walker.entries == 3


def test_an_empty_log_verifies_and_reaches_only_genesis() -> None:
    assert walk([], 10).head == Head(0, GENESIS)
    assert walk([], 10, Head(0, GENESIS)).broken is None
    broken = walk([], 10, Head(1, "ab" * 32)).broken
    assert broken is not None and "entry 1, the head you kept, is missing" in broken.reason


def test_a_rewritten_head_is_found() -> None:
    entries = chain(4)
    walker = walk(entries, 2, Head(3, "cd" * 32))
    assert walker.broken is not None and walker.broken.seq == 3
    assert "entry 3 is not the head you kept" in walker.broken.reason
    assert walker.head == Head(2, entries[1].hash)


def test_entries_read_back_from_their_json_lines_and_verify() -> None:
    entries = chain(3)
    assert [entry_from_json(json.dumps(entry_json(e))) for e in entries] == entries
    assert walk([entry_from_json(json.dumps(entry_json(e))) for e in entries], 2
                ).broken is None
    odd = replace(entries[0], client_ip="2001:db8::7", details={"n": 1, "ok": True})
    assert entry_from_json(json.dumps(entry_json(odd))) == odd


@pytest.mark.parametrize("text", ["5", "5:abc", "x:" + "a" * 64, "-1:" + "a" * 64])
def test_a_head_is_seq_colon_hash(text: str) -> None:
    with pytest.raises(ConfigError, match="--expect-head"):
        parse_head(text)
    assert parse_head(" 12:" + "AB" * 32 + "\n") == Head(12, "ab" * 32)
