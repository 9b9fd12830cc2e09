"""The PostgreSQL audit log's lock (``store/postgres/audit.py``): an append waits for
the replica that holds the audit lock, and then chains its entry to the one that
replica committed (issue 13 item 4: the chain never forks). This is what the read of
the newest entry in a statement of its own, after the lock is granted, is for: read in
the statement that waited, its snapshot would predate the other replica's entry."""

from __future__ import annotations

import asyncio

import asyncpg

from acme_ca.domain.audit import AuditAction, AuditEvent, verify_chain
from acme_ca.store.audit import entry_values, next_entry
from acme_ca.store.postgres import PostgresStore
from acme_ca.store.postgres.audit import _INSERT, AUDIT_LOCK
from tests.store.conftest import T0
from tests.store.pg import lock_waited_for
from tests.waiting import within


def event(n: int) -> AuditEvent:
    return AuditEvent(AuditAction.ACCOUNT_CREATED, f"account:acct-{n}")


async def test_an_append_waits_for_the_lock_holder_and_follows_its_entry(
        pg_store: PostgresStore, pg_url: str):
    first = await pg_store.append_audit(event(1), T0)
    replica = await asyncpg.connect(pg_url)
    try:
        async with replica.transaction():  # another replica, appending entry 2
            await replica.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK)
            second = next_entry(event(2), T0, first)
            await replica.execute(_INSERT, *entry_values(second, second.at))
            waiting = asyncio.create_task(pg_store.append_audit(event(3), T0))
            await within(lock_waited_for(replica, locktype="advisory"),
                         "the append to wait for the audit lock")
            assert not waiting.done()  # held by the lock, not racing ahead
        third = await waiting
    finally:
        await replica.close()
    assert (third.seq, third.prev_hash) == (3, second.hash)
    log = await pg_store.audit_entries()
    assert [e.seq for e in log] == [1, 2, 3] and verify_chain(log) == (third, None)
