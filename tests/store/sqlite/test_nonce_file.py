"""The nonce file (store/sqlite/opening.py, sqlite/nonces.py): shared by every process,
written without fsync, never a reason for the event loop to sleep, started afresh
when damaged, kept across restarts and forgotten after a reboot."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.errors import Conflict, StoreError
from acme_ca.store import SqliteStore
from acme_ca.store.sqlite.opening import nonce_path, read_boot_id
from tests.store.conftest import T0
from tests.store.sqlite.conftest import waits_for_lock
from tests.waiting import until, within

LATER = T0 + timedelta(minutes=5)


def raw(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path))


async def test_a_nonce_lock_held_by_another_process_never_stalls_the_event_loop(
    acme_store: SqliteStore, db_file: Path
):
    """Another worker in the middle of a nonce write: the store waits for it, trying
    again on the loop between its other tasks; the loop goes on serving (this test runs
    on it, and so does a read), and the write ends once the lock is free."""
    other = sqlite3.connect(nonce_path(str(db_file)), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(acme_store.add_nonce("a", LATER))
        await within(waits_for_lock(acme_store._connections.nonces),
                     "the nonce write to wait for the lock")
        assert (await acme_store.get_account("acct-1")).id == "acct-1"  # loop serves
        assert not write.done()  # it did wait for the lock
        other.execute("COMMIT")
        await within(write, "the nonce write, once the lock is free")
        await acme_store.add_nonces(["b", "c"], LATER)
    finally:
        other.close()
    assert [await acme_store.consume_nonce(n, T0) for n in "abc"] == [True] * 3


def damage_index(path: str) -> None:
    """Scribble over the leaf pages of the expiry index (the table itself stays whole)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = [row[0] for row in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'nonces_by_expiry' AND pagetype = 'leaf'")]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert pages
    with open(path, "r+b") as file:
        for page in pages:
            file.seek((page - 1) * size)
            file.write(b"\xff" * size)


async def test_damage_anywhere_in_the_nonce_file_is_found_and_the_file_started_afresh(
    db_file: Path,
):
    store = await SqliteStore.open(db_file)
    await store.add_nonces([f"nonce-{n:06d}-" + "x" * 40 for n in range(3000)], LATER)
    await store.close()
    damage_index(nonce_path(str(db_file)))
    store = await SqliteStore.open(db_file)
    try:
        await store.add_nonce("fresh", LATER)
        assert await store.consume_nonce("fresh", T0) is True
        assert await store.consume_nonce("nonce-000100-" + "x" * 40, T0) is False  # void
    finally:
        await store.close()


async def test_processes_opening_a_damaged_nonce_file_together_share_one_fresh_file(
    db_file: Path,
):
    """serve --workers N: the workers open the store at the same moment; one of them
    starts the file afresh and all of them use that one."""
    await (await SqliteStore.open(db_file)).close()
    path = Path(nonce_path(str(db_file)))
    for _ in range(10):
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.write_bytes(b"not a database at all" * 100)
        first, second = await asyncio.gather(SqliteStore.open(db_file),
                                             SqliteStore.open(db_file))
        try:
            await first.add_nonce("from-first", LATER)
            await second.add_nonce("from-second", LATER)
            assert await second.consume_nonce("from-first", T0) is True
            assert await first.consume_nonce("from-second", T0) is True
        finally:
            await first.close()
            await second.close()


def booted(boot: str | None) -> Callable[[], str | None]:
    """The boot id a store is opened in (``SqliteStore.open(boot_id=)``)."""
    return lambda: boot


async def test_a_restart_voids_no_nonce(db_file: Path):
    """RFC 8555 6.5: a nonce is good once. A store opened later on the same file, in the
    same boot (a restarted server, another replica's worker), accepts a nonce issued
    before, once: what a killed process committed is in the kernel's cache."""
    first = await SqliteStore.open(db_file, boot_id=booted("boot-1"))
    await first.add_nonces(["a", "b"], LATER)
    await first.close()
    later = await SqliteStore.open(db_file, boot_id=booted("boot-1"))
    try:
        assert [await later.consume_nonce(n, T0) for n in "aab"] == [True, False, True]
    finally:
        await later.close()


async def test_a_reboot_forgets_every_nonce(db_file: Path):
    """The file is written without fsync: a power loss may have lost a consumption, so a
    store opened in another boot than the file's forgets every nonce, and keeps those it
    issues from then on."""
    first = await SqliteStore.open(db_file, boot_id=booted("boot-1"))
    await first.add_nonce("before", LATER)
    await first.close()
    rebooted = await SqliteStore.open(db_file, boot_id=booted("boot-2"))
    await rebooted.add_nonce("after", LATER)
    await rebooted.close()
    again = await SqliteStore.open(db_file, boot_id=booted("boot-2"))
    try:
        assert await again.consume_nonce("before", T0) is False
        assert await again.consume_nonce("after", T0) is True
    finally:
        await again.close()


async def test_where_the_boot_is_unknown_every_opening_forgets_the_nonces(db_file: Path):
    first = await SqliteStore.open(db_file, boot_id=booted("boot-1"))
    await first.add_nonce("a", LATER)
    await first.close()
    unknown = await SqliteStore.open(db_file, boot_id=booted(None))
    try:
        assert await unknown.consume_nonce("a", T0) is False
    finally:
        await unknown.close()


def test_the_boot_id_is_read_from_the_kernel_file_and_none_without_it(tmp_path: Path):
    kernel = tmp_path / "boot_id"
    kernel.write_text("0f6c3d2e-8b3a-4c41-9d1e-5a1b2c3d4e5f\n")
    assert read_boot_id(kernel) == "0f6c3d2e-8b3a-4c41-9d1e-5a1b2c3d4e5f"
    assert read_boot_id(tmp_path / "missing") is None


async def test_a_batch_of_nonces_is_stored_whole_or_not_at_all(acme_store: SqliteStore):
    """So that a batch retried after SQLITE_BUSY inserts nothing twice."""
    with pytest.raises(Conflict):
        await acme_store.add_nonces(["a", "b", "a"], LATER)
    assert await acme_store.consume_nonce("b", T0) is False



async def test_a_nonce_call_cancelled_while_it_waits_for_the_lock_stops_waiting_first(
    acme_store: SqliteStore, db_file: Path
):
    """The wait ends with the cancellation: no try is left to run later, nothing
    half-done stays."""
    other = sqlite3.connect(nonce_path(str(db_file)), isolation_level=None)
    nonces = acme_store._connections.nonces
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(acme_store.add_nonce("a", LATER))
        await within(waits_for_lock(nonces), "the nonce write to wait for the lock")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert nonces._retrying == 0  # no try left to run
        other.execute("COMMIT")
    finally:
        other.close()
    await acme_store.add_nonce("b", LATER)
    assert await acme_store.consume_nonce("a", T0) is False
    assert await acme_store.consume_nonce("b", T0) is True


async def test_every_connection_that_runs_on_the_loop_has_busy_timeout_zero(
    acme_store: SqliteStore,
):
    """A busy handler would sleep on the event loop's thread; locks are waited for by
    trying again between the loop's other tasks instead (Connection.without_sleeping)."""
    connections = acme_store._connections
    for conn in (connections.reader, connections.nonces, connections.writer):
        rows = await conn.execute_fetchall("PRAGMA busy_timeout")
        assert next(iter(rows))[0] == 0


async def test_a_full_disk_is_reported_as_such_for_a_batch_of_nonces(db_file: Path):
    """When SQLite has rolled the transaction back itself (SQLITE_FULL), the error
    says so, and nothing of the batch stays."""
    store = await SqliteStore.open(db_file)
    raw = store._connections.nonces._raw
    raw.execute(f"PRAGMA max_page_count = {raw.execute('PRAGMA page_count').fetchone()[0] + 2}")
    try:
        with pytest.raises(StoreError, match="full"):
            await store.add_nonces([f"n{i:06d}" + "x" * 60 for i in range(2000)], LATER)
        assert not raw.in_transaction
        assert await store.consume_nonce("n000001" + "x" * 60, T0) is False
    finally:
        await store.close()


async def test_closing_lets_nonce_calls_waiting_for_a_lock_end_first(db_file: Path):
    """A close that arrives while two nonce calls wait for another process's lock: both
    calls end, then the connection closes."""
    store = await SqliteStore.open(db_file)
    nonces = store._connections.nonces
    other = sqlite3.connect(nonce_path(str(db_file)), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(store.add_nonce("x", LATER))
        second = asyncio.create_task(store.add_nonce("y", LATER))
        await until(lambda: nonces._retrying == 2, "both calls to wait for the lock")
        closing = asyncio.create_task(store.close())
        for _ in range(3):  # the close reaches its wait for both calls
            await asyncio.sleep(0)
        assert not nonces._closed  # it waits for them before it closes anything
        other.execute("COMMIT")
        results = await within(asyncio.gather(first, second, closing,
                                              return_exceptions=True), "all three")
    finally:
        other.close()
    assert results == [None, None, None]  # both calls ended before the close
    assert nonces._closed
    with raw(nonce_path(str(db_file))) as check:
        assert {row[0] for row in check.execute("SELECT nonce FROM nonces")} == {"x", "y"}


HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
sys.stdin.readline()
"""


@contextlib.contextmanager
def another_worker_holds_the_lock(path: str) -> Iterator[Callable[[], None]]:
    """Another process holds the write lock of the file at ``path`` (a worker in the
    middle of a write); calling what this yields releases it, and returns once it has."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    stdin, stdout = holder.stdin, holder.stdout

    def release() -> None:
        stdin.write("\n")
        stdin.flush()
        assert stdout.readline().strip() == "released"

    try:
        assert stdout.readline().strip() == "held"
        yield release
    finally:
        holder.communicate("\n", timeout=10)


async def test_a_nonce_call_is_not_queued_behind_one_that_waits_for_a_lock(
    acme_store: SqliteStore, db_file: Path
):
    """RFC 8555 6.5 (every POST consumes a nonce, every response stores some). Another
    worker process holds the nonce file's lock: a call waits for it on the loop, and
    once the lock is free a later call runs at once on the loop's thread, not after the
    waiting one; the waiting one then ends too. No statement runs off the loop."""
    nonces = acme_store._connections.nonces
    threads: set[int] = set()
    nonces._raw.set_trace_callback(lambda sql: threads.add(threading.get_ident()))
    with another_worker_holds_the_lock(nonce_path(str(db_file))) as release:
        waiting = asyncio.create_task(acme_store.add_nonce("a", LATER))
        await waits_for_lock(nonces)
        release()
        await acme_store.add_nonce("b", LATER)  # no await yielded to `waiting` before
        assert not waiting.done()
        await within(waiting, "the waiting call, once the lock is free")
    assert threads == {threading.get_ident()}
    assert [await acme_store.consume_nonce(n, T0) for n in "ab"] == [True, True]


async def test_two_closes_at_once_while_a_nonce_call_waits_for_a_lock_both_end(db_file: Path):
    """Closing twice is harmless, at the same moment too (a shutdown and an interrupted
    command's clean-up): while another worker process holds the nonce file's lock and a
    call waits for it, two closes wait with it, and both end once it is free."""
    store = await SqliteStore.open(db_file)
    nonces = store._connections.nonces
    with another_worker_holds_the_lock(nonce_path(str(db_file))) as release:
        waiting = asyncio.create_task(store.add_nonce("a", LATER))
        await waits_for_lock(nonces)
        closes = [asyncio.create_task(store.close()) for _ in range(2)]
        for _ in range(3):  # both closes reach their wait for the waiting call
            await asyncio.sleep(0)
        assert not nonces._closed  # they wait for it before either closes anything
        release()
        await within(asyncio.gather(waiting, *closes), "the call and both closes", 3)
    assert nonces._closed
    with raw(nonce_path(str(db_file))) as check:
        assert [row[0] for row in check.execute("SELECT nonce FROM nonces")] == ["a"]


async def test_nonces_work_in_memory(memory_store: SqliteStore):
    await memory_store.add_nonce("n", T0 + timedelta(minutes=1))
    results = await asyncio.gather(*(memory_store.consume_nonce("n", T0) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]


async def test_nonces_skip_fsync_in_a_private_file_of_their_own(
    acme_store: SqliteStore, db_file: Path
):
    """Nonces need no durability (RFC 8555 6.5: a lost nonce costs one badNonce retry);
    the ACME state does (synchronous = FULL)."""
    async def pragma(conn: object, name: str) -> int:
        rows = await conn.execute_fetchall(f"PRAGMA {name}")  # type: ignore[attr-defined]
        return int(next(iter(rows))[0])

    connections = acme_store._connections
    assert await pragma(connections.nonces, "synchronous") == 0
    assert await pragma(connections.writer, "synchronous") == 2
    assert await pragma(connections.reader, "query_only") == 1
    assert Path(nonce_path(str(db_file))).stat().st_mode & 0o777 == 0o600


async def test_an_unreadable_nonce_file_is_started_afresh(db_file: Path):
    """After a power loss the unsynced nonce file may be damaged: nonces are disposable,
    the store opens with an empty one."""
    Path(nonce_path(str(db_file))).write_bytes(b"not a database at all" * 100)
    store = await SqliteStore.open(db_file)
    try:
        await store.add_nonce("n", T0 + timedelta(minutes=1))
        assert await store.consume_nonce("n", T0) is True
    finally:
        await store.close()
