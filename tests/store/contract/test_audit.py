"""The audit log in the store (``AuditStore``, issue 13 item 4): appended with a hash
chained to the entry before, by any number of processes or replicas at once without
the chain forking, and read back exactly enough that ``verify_chain`` accepts it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from acme_ca.domain.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditEvent,
    chain_hash,
    verify_chain,
)
from acme_ca.store import Store
from tests.store.conftest import T0
from tests.store.contract.conftest import Backend

EVENT = AuditEvent(AuditAction.CERTIFICATE_ISSUED, "account:acct-1", "2001:db8::1",
                   ("www.example.test", "192.0.2.1"), "1a2b3c",
                   {"profile": "server", "days": 90, "renewal": False, "replaces": None,
                    "note": "caf\u00e9 \u2713"})


def event(n: int) -> AuditEvent:
    return AuditEvent(AuditAction.ACCOUNT_CREATED, f"account:acct-{n}", details={"n": n})


async def whole_log(store: Store, page: int = 64) -> list[AuditEntry]:
    """Every entry, read a page at a time as ``acme-ca audit verify`` reads it."""
    entries: list[AuditEntry] = []
    while batch := await store.audit_entries(after_seq=entries[-1].seq if entries else 0,
                                             limit=page):
        entries += batch
    return entries


async def test_an_empty_log_has_no_head_and_no_entries(store: Store):
    assert await store.last_audit_entry() is None
    assert await store.audit_entries() == []


async def test_the_first_entry_follows_genesis_and_reads_back_as_appended(store: Store,
                                                                          other: Store):
    """Issue 13 item 4: who, client IP, identifiers, serial and time are kept; the entry
    read back (by another process) is the one appended, to the microsecond, so its hash
    verifies."""
    entry = await store.append_audit(EVENT, T0)
    assert (entry.seq, entry.prev_hash) == (1, GENESIS)
    assert entry.hash == chain_hash(1, T0, EVENT, GENESIS)
    assert (entry.at, entry.action, entry.actor, entry.client_ip, entry.identifiers,
            entry.serial, dict(entry.details)) == (
        T0, "certificate.issued", "account:acct-1", "2001:db8::1",
        ("www.example.test", "192.0.2.1"), "1a2b3c", dict(EVENT.details))
    assert await other.audit_entries() == [entry]
    assert await other.last_audit_entry() == entry
    assert verify_chain([entry]) == (entry, None)


async def test_each_entry_holds_the_hash_of_the_one_before(store: Store, other: Store):
    first = await store.append_audit(event(1), T0)
    second = await other.append_audit(event(2), T0)  # the same moment: seq orders them
    third = await store.append_audit(event(3), T0 - timedelta(hours=1))  # a slow clock
    assert [e.seq for e in (first, second, third)] == [1, 2, 3]
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert await whole_log(store) == [first, second, third]
    assert verify_chain(await whole_log(other)) == (third, None)


async def test_a_time_in_another_zone_is_kept_as_the_same_moment_in_utc(store: Store):
    """Datetimes round-trip exactly: an aware time in any zone is stored as that moment
    in UTC, microseconds kept, and hashes alike before and after."""
    elsewhere = (T0 + timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=-5)))
    entry = await store.append_audit(EVENT, elsewhere)
    assert entry.at == elsewhere and entry.at.utcoffset() == timedelta(0)
    (read,) = await store.audit_entries()
    assert read == entry and read.at.tzinfo is not None and read.at.utcoffset() == timedelta(0)
    assert read.at.microsecond == 123457
    assert verify_chain([read]) == (read, None)


async def test_a_naive_time_is_refused_and_nothing_is_written(store: Store):
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.append_audit(EVENT, datetime(2026, 1, 1, 12))
    assert await store.last_audit_entry() is None
    with pytest.raises(ValueError):
        await store.audit_entries(since=datetime(2026, 1, 1, 12))


async def test_a_nul_in_a_text_field_is_refused_and_nothing_is_written(store: Store):
    """A NUL character cannot be kept in a PostgreSQL text column: refused on every
    backend alike (``check_event``), before anything is written; in identifiers and
    details it is JSON, escaped, and kept."""
    for field in ("actor", "client_ip", "serial"):
        with pytest.raises(ValueError, match=field):
            await store.append_audit(replace(EVENT, **{field: "a\x00b"}), T0)
    assert await store.last_audit_entry() is None
    kept = replace(EVENT, identifiers=("a\x00b",), details={"k\x00": "v\x00"})
    entry = await store.append_audit(kept, T0)
    assert await store.audit_entries() == [entry]
    assert entry.identifiers == ("a\x00b",) and dict(entry.details) == {"k\x00": "v\x00"}


async def test_appends_in_flight_are_written_before_the_store_closes(backend: Backend,
                                                                     store: Store):
    """Closing a store (a graceful shutdown, issue 13 item 7) lets the appends already
    asked for finish: none is lost, and the chain stays whole."""
    tasks = [asyncio.create_task(store.append_audit(event(n), T0)) for n in range(20)]
    await asyncio.sleep(0)  # every append is asked for
    await store.close()
    appended = await asyncio.gather(*tasks)
    log = await whole_log(await backend.open())
    assert log == sorted(appended, key=lambda e: e.seq)
    assert [e.seq for e in log] == list(range(1, 21)) and verify_chain(log)[1] is None


async def test_concurrent_appends_from_two_stores_never_fork_the_chain(store: Store,
                                                                      other: Store):
    """Appends are serialised across processes and replicas (``AuditStore``): 200 from
    each of two stores on one database at once give seq 1..400, every entry chained to
    the one before, and a chain ``verify_chain`` accepts."""
    appended = await asyncio.gather(*(
        each.append_audit(event(n), T0 + timedelta(microseconds=n))
        for n in range(200) for each in (store, other)))
    assert sorted(e.seq for e in appended) == list(range(1, 401))
    log = await whole_log(other)
    assert log == sorted(appended, key=lambda e: e.seq)
    assert verify_chain(log) == (log[-1], None)
    assert await store.last_audit_entry() == log[-1]


async def test_entries_are_read_a_page_at_a_time(store: Store):
    """``after_seq`` and ``limit`` page through the log in seq order; ``since`` keeps the
    entries at or after a moment (``acme-ca audit list --since 24h``)."""
    for n in range(1, 8):
        await store.append_audit(event(n), T0 + timedelta(hours=n))
    assert [e.seq for e in await store.audit_entries(limit=3)] == [1, 2, 3]
    assert [e.seq for e in await store.audit_entries(after_seq=3, limit=3)] == [4, 5, 6]
    assert [e.seq for e in await store.audit_entries(after_seq=6, limit=3)] == [7]
    assert await store.audit_entries(after_seq=7) == []
    since = T0 + timedelta(hours=5)
    assert [e.seq for e in await store.audit_entries(since=since)] == [5, 6, 7]
    assert [e.seq for e in await store.audit_entries(
        since=since - timedelta(microseconds=1))] == [5, 6, 7]
    assert [e.seq for e in await store.audit_entries(
        since=since + timedelta(microseconds=1))] == [6, 7]
    assert [e.seq for e in await store.audit_entries(since=since, after_seq=5, limit=1)
            ] == [6]
    assert [e.seq for e in await store.audit_entries(
        since=since.astimezone(timezone(timedelta(hours=9))))] == [5, 6, 7]
    assert await store.audit_entries(since=T0 + timedelta(days=1)) == []
    with pytest.raises(ValueError):
        await store.audit_entries(limit=0)


async def test_the_log_is_a_table_db_stats_counts(store: Store):
    """``acme-ca db stats`` (``table_stats``) lists audit_log with its rows."""
    for n in range(3):
        await store.append_audit(event(n), T0)
    stats = {t.name: t.rows for t in await store.table_stats()}
    assert stats["audit_log"] == 3


async def test_an_entry_without_optional_fields_reads_back(store: Store):
    bare = AuditEvent(AuditAction.EAB_KEY_CREATED, "cli:root")
    entry = await store.append_audit(bare, datetime(2026, 12, 31, 23, 59, 59, 999999, UTC))
    (read,) = await store.audit_entries()
    assert read == entry
    assert (read.client_ip, read.identifiers, read.serial, dict(read.details)) == (
        None, (), None, {})
    assert verify_chain([read]) == (read, None)
