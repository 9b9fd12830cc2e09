"""Tampering with the audit log in the database (issue 13 item 4, the security review of
the audit log): what the database refuses, what the chain shows, and what only a head
kept outside the database shows. Tests that edit the log drop the triggers first, as
an attacker with DDL rights would."""

from __future__ import annotations

import asyncio
import importlib
import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from acme_ca.domain.audit import AuditAction, AuditEntry, AuditEvent, chain_hash, verify_chain
from acme_ca.store import Store
from tests.authority.test_auditor import Kept
from tests.store.conftest import T0
from tests.store.contract.conftest import Backend, only_on
from tests.store.contract.test_audit import whole_log

DROP_TRIGGERS = {
    "sqlite": ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"],
    "postgresql": ["DROP TRIGGER audit_log_append_only ON audit_log"],
}


def revoked(n: int) -> AuditEvent:
    return AuditEvent(AuditAction.CERTIFICATE_REVOKED, f"account:A{n}", "10.0.0.1",
                      ("a.example",), f"0{n}", {"by": "owner", "reason": "keyCompromise"})


async def five(store: Store) -> list[AuditEntry]:
    return [await store.append_audit(revoked(n), T0 + timedelta(minutes=n)) for n in range(5)]


async def with_ddl_rights(backend: Backend) -> None:
    for sql in DROP_TRIGGERS[backend.name]:
        await backend.execute(sql)


@pytest.mark.parametrize("sql", ["UPDATE audit_log SET actor = 'account:else' WHERE seq = 2",
                                 "DELETE FROM audit_log WHERE seq >= 4"])
async def test_the_database_refuses_to_update_or_delete_entries(backend: Backend, store: Store,
                                                                sql: str):
    """Finding F1 (c): audit_log is append-only in the database (migration 0010's
    triggers), so changing it takes DDL, never an accident."""
    appended = await five(store)
    with pytest.raises(Exception, match="append-only"):
        await backend.execute(sql)
    assert await whole_log(store) == appended


@only_on("postgresql")  # TRUNCATE is PostgreSQL's
async def test_postgresql_refuses_truncate(backend: Backend, store: Store):
    """Finding F1 (c): TRUNCATE fires no row trigger; a statement trigger refuses it."""
    appended = await five(store)
    with pytest.raises(Exception, match="append-only: TRUNCATE"):
        await backend.execute("TRUNCATE audit_log")
    assert await whole_log(store) == appended


async def test_a_rehashed_or_cut_log_breaks_only_at_the_head_kept(backend: Backend,
                                                                  store: Store):
    """Finding F1 (b): the hash has no key, so an entry edited and every entry after it
    re-hashed, or the newest entries deleted, verify by themselves; against the head
    kept outside the database (``expected_head``) they break."""
    appended = await five(store)
    head = (appended[-1].seq, appended[-1].hash)
    await with_ddl_rights(backend)
    prev = appended[0].hash
    for entry in appended[1:]:
        if entry.seq == 2:
            entry = replace(entry, actor="account:SOMEONE_ELSE")
        digest = chain_hash(entry.seq, entry.at, entry, prev)
        await backend.execute(f"UPDATE audit_log SET actor = '{entry.actor}', "  # noqa: S608
                              f"prev_hash = '{prev}', hash = '{digest}' WHERE seq = {entry.seq}")
        prev = digest
    log = await whole_log(store)
    assert log[1].actor == "account:SOMEONE_ELSE" and verify_chain(log)[1] is None
    last, broken = verify_chain(log, expected_head=head)
    assert broken is not None and broken.seq == 5 and "not the head you kept" in broken.reason
    assert last == log[3]
    await backend.execute("DELETE FROM audit_log WHERE seq >= 4")
    log = await whole_log(store)
    assert verify_chain(log)[1] is None
    broken = verify_chain(log, expected_head=head)[1]
    assert broken is not None and broken.seq == 5 and "missing" in broken.reason


async def test_every_append_writes_the_head_to_a_log_of_its_own(store: Store):
    """Finding F1 (a): each committed append writes one INFO line on the logger
    acme_ca.audit.head with its seq and hash, for a log collector to witness."""
    kept, head = Kept(), logging.getLogger("acme_ca.audit.head")
    level = head.level
    head.addHandler(kept)
    head.setLevel(logging.INFO)
    try:
        appended = await five(store)
    finally:
        head.removeHandler(kept)
        head.setLevel(level)
    assert [r.getMessage() for r in kept.records] == [
        f"audit log head {e.seq}:{e.hash}" for e in appended]
    assert {r.levelno for r in kept.records} == {logging.INFO}


@pytest.mark.parametrize("column,text", [
    # a duplicate key: a first-wins reader sees another reason than the one hashed
    ("details", '{"by":"owner", "reason":"unspecified","reason":"keyCompromise"}'),
    ("identifiers", '["\\u0061.example"]'),  # the same name, escaped
])
async def test_stored_text_that_is_not_the_canonical_form_breaks_the_chain(
        backend: Backend, store: Store, column: str, text: str):
    """Finding F5: what is hashed is the parsed value; stored text that parses to it but
    is not what the store writes is reported as a break, not accepted."""
    await five(store)
    await with_ddl_rights(backend)
    await backend.execute(f"UPDATE audit_log SET {column} = '{text}' WHERE seq = 2")  # noqa: S608
    last, broken = verify_chain(await whole_log(store))
    assert last is not None and last.seq == 1
    assert broken is not None and broken.seq == 2 and f"its {column} text" in broken.reason


@only_on("sqlite")  # PostgreSQL keeps timestamptz, not text
async def test_a_time_stored_with_another_offset_breaks_the_chain(backend: Backend,
                                                                  store: Store):
    """Finding F5: on SQLite the time is text; the same moment with another offset is not
    what the store writes (and would sort wrongly for ``since``)."""
    await five(store)
    await with_ddl_rights(backend)
    await backend.execute("UPDATE audit_log SET at = '2026-01-02T02:04:05.123456+01:00' "
                          "WHERE seq = 2")
    broken = verify_chain(await whole_log(store))[1]
    assert broken is not None and broken.seq == 2 and "its at text" in broken.reason


@pytest.mark.parametrize(("backend", "change"), [
    *((name, change) for name in ("sqlite", "postgresql")
      for change in ("details = '{not json'", "identifiers = '{}'", "details = '[1]'")),
    ("sqlite", "at = '2026-12-06T21:02:00'"),  # a timestamptz cannot be naive
], indirect=["backend"])
async def test_an_unreadable_entry_is_a_break_not_a_crash(backend: Backend, store: Store,
                                                          change: str):
    """Finding F6: a row that cannot be decoded (bad JSON, a naive time) is read as an
    entry marked unreadable, which ``verify_chain`` reports; nothing raises."""
    await five(store)
    await with_ddl_rights(backend)
    await backend.execute(f"UPDATE audit_log SET {change} WHERE seq = 3")  # noqa: S608
    log = await whole_log(store)
    assert [e.seq for e in log] == [1, 2, 3, 4, 5]
    assert (await store.last_audit_entry()) == log[-1]
    last, broken = verify_chain(log)
    assert last == log[1] and broken is not None and broken.seq == 3
    assert "cannot be read" in broken.reason


@pytest.mark.parametrize("field,value", [
    ("actor", "cli:root (sudo by \udcff)"), ("client_ip", "\udc80"), ("serial", "0\ud800"),
    ("identifiers", ("a.example", "\udcff.example")), ("details", {"k": "\udcff"}),
    ("details", {"\udcff": 1})])
async def test_text_the_drivers_cannot_encode_is_refused_before_writing(
        store: Store, field: str, value: object):
    """Finding F3: every text field, identifiers and details included, must be valid
    Unicode (strict UTF-8): refused alike on both backends, nothing written."""
    with pytest.raises(ValueError, match=field):
        await store.append_audit(replace(revoked(1), **{field: value}), T0)
    assert await store.last_audit_entry() is None


@only_on("postgresql")  # batches are PostgreSQL's
async def test_one_bad_append_fails_alone_in_its_batch(backend: Backend, store: Store,
                                                       monkeypatch: pytest.MonkeyPatch):
    """Finding F3: on PostgreSQL appends in flight together are one batch; one that the
    driver refuses (here ``check_event`` is bypassed to let one through) fails alone:
    the batch is written again one append at a time."""
    postgres_audit = importlib.import_module("acme_ca.store.postgres.audit")
    monkeypatch.setattr(postgres_audit, "check_event", lambda event, at: None)
    events = [revoked(n) for n in range(6)]
    events[3] = replace(events[3], actor="cli:root (sudo by \udcff)")
    results = await asyncio.gather(*(store.append_audit(e, T0) for e in events),
                                   return_exceptions=True)
    assert [isinstance(r, Exception) for r in results] == [False] * 3 + [True] + [False] * 2
    log = await whole_log(store)
    assert [e.actor for e in log] == [e.actor for i, e in enumerate(events) if i != 3]
    assert verify_chain(log)[1] is None

