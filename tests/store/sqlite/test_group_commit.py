"""Group commit (store/sqlite/commits.py): concurrent writers share one durable COMMIT,
and each still gets all-or-nothing, durable, compare-and-set semantics.

Another process's write lock (a second sqlite3 connection in BEGIN IMMEDIATE) makes
writers queue; tests wait for the committer to try for the lock again (waits_for_lock)
and for the queue to hold the writers, never for a length of time."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from acme_ca.domain.models import AccountStatus, OrderStatus
from acme_ca.errors import Conflict, NotFound, StoreError
from acme_ca.store import SqliteStore
from tests.store.conftest import make_account, make_order, reservation
from tests.store.sqlite.conftest import waits_for_lock
from tests.waiting import until, within


def count_commits(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    raw_writer = store._connections.writer._raw
    raw_writer.set_trace_callback(
        lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


def fail_commits(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every COMMIT of the store's writer fails, as on a disk error."""
    writer = store._connections.writer
    real_execute = writer.execute

    def failing_commit(sql: str, params: object = ()) -> object:
        if sql == "COMMIT":
            async def fail() -> None:
                raise sqlite3.OperationalError("disk I/O error")
            return fail()
        return real_execute(sql, params)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "execute", failing_commit)


def queued(store: SqliteStore, count: int) -> Callable[[], bool]:
    """Whether `count` writers wait in the group commit's queue."""
    return lambda: len(store._commits._queue) == count


def committed_ids(db_file: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(db_file)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM accounts")}


async def test_concurrent_writers_share_commits_and_each_is_durable_when_it_returns(
    acme_store: SqliteStore, db_file: Path
):
    """Twenty concurrent account creations, fewer COMMITs than writers; every writer,
    once it returns, is visible to another connection (it is committed)."""
    commits = count_commits(acme_store)
    visible_on_return: list[bool] = []

    async def create(n: int) -> None:
        await acme_store.create_account(make_account(f"g-{n}", thumbprint=f"t-g-{n}"))
        visible_on_return.append(f"g-{n}" in committed_ids(db_file))

    await asyncio.gather(*(create(n) for n in range(20)))
    assert visible_on_return == [True] * 20
    assert 1 <= len(commits) < 20, commits
    assert {f"g-{n}" for n in range(20)} <= committed_ids(db_file)


async def test_a_failing_writer_is_undone_alone(acme_store: SqliteStore, db_file: Path):
    """A writer that raises in a shared batch (a duplicate key here) is rolled back to
    its savepoint; the writers before and after it in the batch are committed."""
    results = await asyncio.gather(
        acme_store.create_account(make_account("before", thumbprint="t-before")),
        acme_store.create_account(make_account("dupe", thumbprint="thumb-acct-1")),
        acme_store.create_account(make_account("after", thumbprint="t-after")),
        return_exceptions=True,
    )
    assert isinstance(results[1], Conflict)
    assert {"before", "after"} <= committed_ids(db_file)
    assert "dupe" not in committed_ids(db_file)


async def test_compare_and_set_stays_exact_within_a_batch(acme_store: SqliteStore):
    """RFC 8555 7.3.6: an account is deactivated once; of ten concurrent deactivations
    in one batch, exactly one wins and the others see it already done."""
    results = await asyncio.gather(
        *(acme_store.update_account("acct-1", expected_status=AccountStatus.VALID,
                                    status=AccountStatus.DEACTIVATED) for _ in range(10)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))


async def test_a_failed_commit_fails_every_writer_of_the_batch_and_keeps_none(
    acme_store: SqliteStore, db_file: Path, monkeypatch: pytest.MonkeyPatch
):
    fail_commits(acme_store, monkeypatch)
    results = await asyncio.gather(
        *(acme_store.create_account(make_account(f"lost-{n}", thumbprint=f"t-lost-{n}"))
          for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in results), results
    monkeypatch.undo()
    assert not {f"lost-{n}" for n in range(3)} & committed_ids(db_file)
    created = await acme_store.create_account(make_account("later", thumbprint="t-later"))
    assert created.id == "later"  # the store goes on after the failed batch


async def test_a_writer_waits_for_another_process_holding_the_write_lock(
    acme_store: SqliteStore, db_file: Path
):
    """Another process in the middle of a write: the store waits for the lock (in the
    connection's thread, the event loop stays free) instead of failing."""
    other = sqlite3.connect(db_file, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(
            acme_store.create_account(make_account("waited", thumbprint="t-waited")))
        await within(waits_for_lock(acme_store._connections.writer),
                     "the committer to wait for the lock")
        assert not write.done()
        assert (await acme_store.get_account("acct-1")).id == "acct-1"  # reads go on
        other.execute("COMMIT")
        assert (await within(write, "the write, once the lock is free")).id == "waited"
    finally:
        other.close()


async def test_a_writer_cancelled_before_its_turn_writes_nothing(
    acme_store: SqliteStore, db_file: Path
):
    other = sqlite3.connect(db_file, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(
            acme_store.create_account(make_account("first", thumbprint="t-first")))
        await within(waits_for_lock(acme_store._connections.writer),
                     "the committer to wait for the lock with `first`")
        second = asyncio.create_task(
            acme_store.create_account(make_account("second", thumbprint="t-second")))
        await until(queued(acme_store, 2), "`second` to queue behind `first`")
        second.cancel()
        other.execute("COMMIT")
        assert (await within(first, "`first`, once the lock is free")).id == "first"
        with pytest.raises(asyncio.CancelledError):
            await second
    finally:
        other.close()
    assert "second" not in committed_ids(db_file)


async def test_close_finishes_queued_writes_then_refuses_new_ones(db_file: Path):
    store = await SqliteStore.open(db_file)
    pending = [asyncio.create_task(store.create_account(
        make_account(f"q-{n}", thumbprint=f"t-q-{n}"))) for n in range(5)]
    await asyncio.sleep(0)
    await store.close()
    assert all(task.done() and not task.exception() for task in pending)
    assert {f"q-{n}" for n in range(5)} <= committed_ids(db_file)
    with pytest.raises(StoreError, match="closed"):
        await store.create_account(make_account("too-late", thumbprint="t-late"))


async def test_a_transaction_sqlite_rolls_back_fails_the_whole_batch_and_no_more(
    acme_store: SqliteStore, db_file: Path
):
    """Some errors (SQLITE_FULL, IOERR) make SQLite roll the whole transaction back:
    then every writer of the batch so far hears so, and the writers after it go on in
    the next batch. Simulated by a writer that ends the transaction itself."""
    async def ends_the_transaction(conn: object) -> None:
        await conn.execute("ROLLBACK")  # type: ignore[attr-defined]

    other = sqlite3.connect(db_file, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # so that the three below queue into one batch
        first = asyncio.create_task(
            acme_store.create_account(make_account("first", thumbprint="t-first")))
        await until(queued(acme_store, 1), "`first` to queue")
        breaker = asyncio.create_task(acme_store._transaction(ends_the_transaction))
        await until(queued(acme_store, 2), "the breaker to queue")
        after = asyncio.create_task(
            acme_store.create_account(make_account("after", thumbprint="t-after")))
        await until(queued(acme_store, 3), "`after` to queue")
        other.execute("COMMIT")
        results = await asyncio.gather(first, breaker, after, return_exceptions=True)
    finally:
        other.close()
    assert isinstance(results[0], StoreError), results
    assert getattr(results[2], "id", None) == "after", results
    assert committed_ids(db_file) & {"first", "after"} == {"after"}


async def test_a_writer_that_loses_to_another_of_its_batch_hears_so_after_the_commit(
    acme_store: SqliteStore, db_file: Path
):
    """RFC 8555 7.4: of two finalizes in one batch, the loser's Conflict comes once the
    winner's change is committed, so what the loser reads next shows it (processing),
    not the state before (ready). While the batch's COMMIT is under way (in the
    connection's thread) the loop runs every task that is ready: a loser told too
    early would have read the order by then."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.READY), [])
    seen: list[OrderStatus] = []
    seen_during_commit: list[list[OrderStatus]] = []
    loop = asyncio.get_running_loop()

    async def look() -> list[OrderStatus]:
        for _ in range(20):  # steps of the loop, no wall clock: each ready task runs
            await asyncio.sleep(0)
        return list(seen)

    def during_commit(sql: str) -> None:
        if sql.strip().upper() == "COMMIT":  # in the thread, before the COMMIT runs
            seen_during_commit.append(asyncio.run_coroutine_threadsafe(look(), loop).result(5))

    async def finalize(serial: str) -> None:
        try:
            await acme_store.start_issuance("o", reservation(serial, "o"))
        except Conflict:
            seen.append((await acme_store.get_order("o")).status)

    # set while the connection's thread is idle: set while it runs a statement, the
    # setter waits for the connection's mutex holding the GIL, which the callback needs
    acme_store._connections.writer._raw.set_trace_callback(during_commit)
    other = sqlite3.connect(db_file, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # both queue into one batch
        tasks = [asyncio.create_task(finalize(serial)) for serial in ("0a", "0b")]
        await until(queued(acme_store, 2), "both finalizes to queue")
        other.execute("COMMIT")
        await within(asyncio.gather(*tasks), "both finalizes")
    finally:
        other.close()
    assert seen_during_commit == [[]]  # nobody heard anything before the COMMIT ended
    assert seen == [OrderStatus.PROCESSING]


async def test_a_conflict_is_not_told_for_a_write_that_is_never_committed(
    acme_store: SqliteStore, db_file: Path, monkeypatch: pytest.MonkeyPatch
):
    """If the batch's COMMIT fails, a writer that lost to an earlier writer of the batch
    hears StoreError, not a Conflict with a change that does not exist."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.READY), [])
    fail_commits(acme_store, monkeypatch)
    results = await asyncio.gather(
        *(acme_store.start_issuance("o", reservation(s, "o")) for s in ("0a", "0b")),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [StoreError, StoreError], results
    monkeypatch.undo()
    assert (await acme_store.get_order("o")).status is OrderStatus.READY


async def test_cancelling_close_during_a_commit_lets_the_commit_finish_and_tell_the_truth(
    db_file: Path,
):
    """The loop never touches the connection while its thread runs COMMIT (no ROLLBACK
    from another thread); the writer hears the outcome the disk has; a second close
    finishes closing."""
    store = await SqliteStore.open(db_file)
    threads: dict[str, set[str]] = {"COMMIT": set(), "ROLLBACK": set()}
    loop = asyncio.get_running_loop()
    committing, disk = asyncio.Event(), threading.Event()

    def trace(sql: str) -> None:
        statement = sql.strip().upper()
        if statement in threads:
            threads[statement].add(threading.current_thread().name)
            if statement == "COMMIT":  # a slow fsync, that ends when the test says
                loop.call_soon_threadsafe(committing.set)
                disk.wait(10)

    store._connections.writer._raw.set_trace_callback(trace)
    write = asyncio.create_task(store.create_account(make_account("x", thumbprint="t-x")))
    closing = asyncio.create_task(store.close())
    try:
        await within(committing.wait(), "the COMMIT to start in the connection's thread")
        closing.cancel()
        await within(asyncio.wait({closing}), "the close to end, cancelled")
    finally:
        disk.set()
    created, cancelled = await within(asyncio.gather(write, closing, return_exceptions=True),
                                      "the write and the close")
    assert getattr(created, "id", None) == "x", created
    assert isinstance(cancelled, asyncio.CancelledError)
    assert threads["ROLLBACK"] == set()
    assert "x" in committed_ids(db_file)
    await store.close()
    assert store._connections.writer._closed


async def test_cancelled_while_waiting_for_the_lock_leaves_no_lock_behind(db_file: Path):
    store = await SqliteStore.open(db_file)
    writer = store._connections.writer
    other = sqlite3.connect(db_file, isolation_level=None, timeout=0.5)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process is writing
        write = asyncio.create_task(
            store.create_account(make_account("x", thumbprint="t-x")))
        await within(waits_for_lock(writer), "the committer to poll for the lock")
        store._commits._committer.cancel()  # type: ignore[union-attr]
        with pytest.raises(StoreError):
            await write
        assert writer._retrying == 0  # no try left to take the lock later
        other.execute("COMMIT")
        assert not writer.in_transaction
        other.execute("BEGIN IMMEDIATE")  # the lock is free for others
        other.execute("COMMIT")
    finally:
        other.close()
        await store.close()


@pytest.mark.parametrize("yields", range(4))
async def test_in_memory_a_read_never_sees_a_batch_before_its_commit(
    monkeypatch: pytest.MonkeyPatch, yields: int
):
    """For :memory: reader and writer are one connection; still no read may see a row
    whose COMMIT then fails."""
    store = await SqliteStore.open(":memory:")
    fail_commits(store, monkeypatch)
    seen: list[str | None] = []

    async def reader() -> None:
        for _ in range(yields):
            await asyncio.sleep(0)
        try:
            seen.append((await store.get_account("acct-x")).id)
        except NotFound:
            seen.append(None)

    write = asyncio.create_task(store.create_account(make_account("acct-x",
                                                                  thumbprint="t-x")))
    await asyncio.gather(reader(), return_exceptions=True)
    with pytest.raises(StoreError):
        await write
    await store.close()
    assert seen == [None]
