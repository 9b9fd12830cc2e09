"""The cluster's background work under a lease (issue 10, item 3): one process runs the
jobs; a survivor takes over when the holder dies or stops.

Two stores on one database stand for two replicas, on SQLite (one file) and on
PostgreSQL (one database); a third process, killed with SIGKILL, for a holder that
dies. The lease's time is the store's (this machine's clock on SQLite, the server's on
PostgreSQL), so the leases here last a fraction of a second of real time; the tests
wait for what happens (``tests/waiting.py``), and time only what they promise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest

from acme_ca.authority.background import BackgroundWork, Job, holder_id
from acme_ca.authority.expiry import Expiry
from acme_ca.clock import FakeClock
from acme_ca.domain.models import OrderStatus
from acme_ca.errors import StoreUnavailable
from acme_ca.store import Store, open_store
from tests.store.conftest import T0, make_authorization, make_order, with_accounts
from tests.waiting import until, within

TTL, PERIOD = 0.6, 0.1  # a lease of 0.6 s, tried every 0.1 s
SLACK = 1.0  # seconds a busy machine may add to a promised delay


def counting(runs: Counter[str], name: str) -> Job:
    async def run() -> None:
        runs[name] += 1

    return Job(name, run)


def work(store: Store, *jobs: Job, ttl: float = TTL) -> BackgroundWork:
    return BackgroundWork(store, jobs, period=PERIOD, ttl=ttl)


async def test_only_the_holder_runs_the_jobs(replicas: tuple[Store, Store]):
    """Of two processes trying at once, one holds the lease and runs every job, period
    after period; the other runs none."""
    runs: Counter[str] = Counter()
    a = work(replicas[0], counting(runs, "a.sweep"), counting(runs, "a.resume"), ttl=30)
    b = work(replicas[1], counting(runs, "b.sweep"), counting(runs, "b.resume"), ttl=30)
    first = await asyncio.gather(a.step(), b.step())
    assert sorted(first) == [False, True]
    holder, other = (a, b) if first[0] else (b, a)
    for _ in range(3):
        assert await holder.step()
        assert not await other.step()
    name = "a" if holder is a else "b"
    assert runs == {f"{name}.sweep": 4, f"{name}.resume": 4}
    assert holder.held and not other.held


async def test_only_the_holder_expires_orders_and_authorizations(
    replicas: tuple[Store, Store]
):
    """The expiry job (RFC 8555 7.1.6) runs in the lease holder alone, a batch at a time
    until nothing expired is left: every order and authorization past its time moves,
    once, and the other process moves none."""
    now = T0 + timedelta(days=8)  # make_order and make_authorization expire at T0 + 7 days
    await with_accounts(replicas[0])
    for n in range(5):
        authz = make_authorization(f"az-{n}", f"n{n}.example.test")
        await replicas[0].create_order(make_order(f"order-{n}", [authz]), [authz])
    moved: Counter[str] = Counter()

    def expiring(name: str, store: Store) -> Job:
        expiry = Expiry(store, FakeClock(now))

        async def run() -> None:
            moved[name] += await expiry.expire(batch=2)

        return Job("expiring orders and authorizations", run)

    a = work(replicas[0], expiring("a", replicas[0]), ttl=30)
    b = work(replicas[1], expiring("b", replicas[1]), ttl=30)
    first = await asyncio.gather(a.step(), b.step())
    assert sorted(first) == [False, True]
    holder = "a" if first[0] else "b"
    assert moved == {holder: 10}
    assert not await (b if holder == "a" else a).step()
    assert await (a if holder == "a" else b).step()
    assert moved == {holder: 10}  # nothing left the second time
    for n in range(5):
        assert (await replicas[1].get_order(f"order-{n}")).status is OrderStatus.INVALID
        assert (await replicas[1].get_authorization(f"az-{n}")).status.value == "expired"


async def test_a_job_with_every_runs_at_most_that_often_and_at_once_for_a_new_holder(
    replicas: tuple[Store, Store]
):
    """``Job.every``: the expiry and retention jobs (RFC 8555 7.1.6: a read judges an
    expired order invalid whatever the row says) run once per ``every``, not every
    period, and due again once it has passed; a process that takes the lease over runs
    them at once, whenever the former holder last did."""
    runs: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    last_run: dict[str, float] = {}

    def job(name: str, every: float) -> Job:
        async def run() -> None:
            runs[name] += 1
            last_run[name] = loop.time()

        return Job(name, run, every=every)

    # SLOW: the three steps below end within it even on a loaded machine (their three
    # lease commits once took longer than 0.4 s); the test then waits until it is over.
    slow = 2.0
    a = work(replicas[0], job("each", 0), job("slow", slow), job("never", 60), ttl=60)
    for _ in range(3):
        assert await a.step()
    assert runs == {"each": 3, "slow": 1, "never": 1}
    await until(lambda: loop.time() >= last_run["slow"] + slow, "the slow job is due again")
    assert await a.step()
    assert runs == {"each": 4, "slow": 2, "never": 1}
    await a.close()
    b = work(replicas[1], job("b.never", 60), ttl=60)
    assert await b.step()
    assert await b.step()
    assert runs["b.never"] == 1
    await b.close()
    assert await a.step()  # a takes the lease back: what b did in between is not known
    assert runs == {"each": 5, "slow": 3, "never": 2, "b.never": 1}


async def test_a_job_that_failed_or_was_cut_short_is_due_next_period_whatever_its_every(
    replicas: tuple[Store, Store]
):
    """Only a run that completed waits ``every``: one that failed, or that the end of
    the lease's time cut short, goes on next period (RFC 8555 7.1.6 expiry and the
    retention backlog are not left for a minute)."""
    runs: Counter[str] = Counter()

    async def fails_once() -> None:
        runs["fails_once"] += 1
        if runs["fails_once"] == 1:
            raise RuntimeError("a passing failure")

    async def long_once() -> None:
        runs["long_once"] += 1
        if runs["long_once"] == 1:
            await asyncio.Event().wait()

    background = work(replicas[0], Job("fails_once", fails_once, every=60),
                      Job("long_once", long_once, every=60))
    for _ in range(3):
        assert await within(background.step(), "a round")
    assert runs == {"fails_once": 2, "long_once": 2}


async def test_a_survivor_takes_over_once_the_holder_stops_renewing(
    replicas: tuple[Store, Store], caplog: pytest.LogCaptureFixture
):
    """A holder that stops renewing (hung, cut off) keeps the lease until it expires,
    not a moment less; then the next try elsewhere takes it, and the old holder hears
    at its next try that it lost it."""
    caplog.set_level(logging.INFO, "acme_ca.authority.background")
    runs: Counter[str] = Counter()
    a = work(replicas[0], counting(runs, "a"))
    b = work(replicas[1], counting(runs, "b"))
    renewed = time.monotonic()
    assert await a.step()
    assert not await b.step()
    while not await b.step():
        await asyncio.sleep(PERIOD / 10)
    taken = time.monotonic()
    assert TTL - 0.05 <= taken - renewed <= TTL + SLACK
    assert runs == {"a": 1, "b": 1}
    assert not await a.step()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("took the background lease" in m for m in messages) == 2, messages
    assert any("lost the background lease: another process holds it now" in m
               for m in messages), messages


async def test_release_at_shutdown_hands_the_lease_over_at_once(
    replicas: tuple[Store, Store], caplog: pytest.LogCaptureFixture
):
    """A holder that stops cleanly gives the lease up: the next try elsewhere takes it,
    long before the lease would have expired."""
    caplog.set_level(logging.INFO, "acme_ca.authority.background")
    a, b = work(replicas[0], ttl=60), work(replicas[1], ttl=60)
    await a.start()
    assert a.held
    assert not await b.step()
    await a.close()
    await a.close()  # twice is harmless
    assert await b.step()
    assert "released the background lease" in caplog.text


class AnswersLate:
    """A real store whose ``hold_lease`` is committed but answered late (an fsync, a
    PostgreSQL round trip): ``taken`` is set once the take is committed, and the
    answer never comes before the test closes the work."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.taken = asyncio.Event()

    async def hold_lease(self, name: str, holder: str, ttl: timedelta) -> datetime | None:
        expires = await self.store.hold_lease(name, holder, ttl)
        if expires is not None:
            self.taken.set()
            await asyncio.Event().wait()
        return expires

    async def release_lease(self, name: str, holder: str) -> None:
        await self.store.release_lease(name, holder)


async def test_a_shutdown_while_the_lease_is_being_taken_still_releases_it(
    replicas: tuple[Store, Store]
):
    """Issue 10 review: close() lands after a take of the lease committed but before
    its answer came back, so this process does not know it holds the lease. It gives it
    up all the same (the release names the holder, so it changes nothing when another
    has it): a survivor takes over at once, not after the whole TTL."""
    store = AnswersLate(replicas[0])
    old = work(replicas[1], ttl=60)
    assert await old.step()
    closing = BackgroundWork(store, [], period=PERIOD, ttl=60)  # type: ignore[arg-type]
    await closing.start()
    assert not closing.held
    await old.close()
    await within(store.taken.wait(), "the closing process's next try to take the lease")
    await closing.close()
    assert await work(replicas[1], ttl=60).step()


CHILD = """
import asyncio, sys
from acme_ca.authority.background import BackgroundWork
from acme_ca.store import open_store

async def main():
    store = await open_store(sys.argv[1])
    work = BackgroundWork(store, [], holder="child", period=float(sys.argv[2]),
                          ttl=float(sys.argv[3]))
    await work.start()
    print("held" if work.held else "not held", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_the_work_moves_within_ttl_and_period_when_the_holder_is_killed(
    replicas: tuple[Store, Store], database: str
):
    """kill -9 of the holding process: nothing is released, and a survivor trying every
    period holds the lease within TTL + PERIOD of the holder's death."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, database, str(PERIOD), str(TTL),
        stdout=asyncio.subprocess.PIPE)
    try:
        assert child.stdout is not None
        line = await within(child.stdout.readline(), "the child to hold the lease")
        assert line == b"held\n"
        survivor = work(replicas[0])
        await survivor.start()
        assert not survivor.held
        child.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await within(child.wait(), "the child to die")
        await until(lambda: survivor.held, "the survivor holds the lease")
        assert TTL - PERIOD - 0.05 <= time.monotonic() - killed <= TTL + PERIOD + SLACK
        await survivor.close()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_a_failing_job_is_logged_and_tried_again_next_period(
    replicas: tuple[Store, Store], caplog: pytest.LogCaptureFixture
):
    """A job that fails (the database out of reach, a bug) does not stop the jobs after
    it, nor the loop: each is tried again next period."""
    runs: Counter[str] = Counter()

    async def unreachable() -> None:
        runs["unreachable"] += 1
        raise StoreUnavailable("connection refused")

    async def broken() -> None:
        runs["broken"] += 1
        raise RuntimeError("a bug")

    background = work(replicas[0], Job("unreachable", unreachable), Job("broken", broken),
                      counting(runs, "after"))
    await background.start()
    try:
        await until(lambda: runs["after"] >= 2, "a second period")
    finally:
        await background.close()
    assert runs["unreachable"] >= 2 and runs["broken"] >= 2
    assert "background job unreachable: the database cannot be reached" in caplog.text
    assert "background job broken failed; next try" in caplog.text
    assert "RuntimeError: a bug" in caplog.text  # a bug keeps its traceback


async def test_a_store_that_fails_never_stops_the_loop_and_is_logged_once(
    database: str, caplog: pytest.LogCaptureFixture
):
    """A store that cannot hold the lease (here: closed under the work) costs the lease
    and is said once, not every period; no job runs without the lease."""
    store = await open_store(database)
    runs: Counter[str] = Counter()
    background = work(store, counting(runs, "job"))
    await background.start()
    assert background.held
    await store.close()
    for _ in range(3):
        assert not await background.step()
    await background.close()
    assert runs == {"job": 1}
    assert caplog.text.count("cannot hold the background lease") == 1, caplog.text
    assert "lost the background lease: this process could not renew it" in caplog.text


async def test_a_round_of_jobs_ends_before_the_lease_could_expire(
    replicas: tuple[Store, Store], caplog: pytest.LogCaptureFixture
):
    """A job still running when the lease's time is nearly up is cut short, so that two
    processes do not run it for long at once; what it left is done next period."""
    runs: Counter[str] = Counter()

    async def endless() -> None:
        await asyncio.Event().wait()

    background = work(replicas[0], Job("endless", endless), counting(runs, "after"))
    began = time.monotonic()
    assert await within(background.step(), "the round to be cut short")
    assert time.monotonic() - began < TTL
    assert runs == {}
    assert "background job endless was cut short" in caplog.text


def test_the_lease_lasts_longer_than_two_periods():
    with pytest.raises(ValueError, match="two periods"):
        BackgroundWork(object(), [], period=1, ttl=2)  # type: ignore[arg-type]


def test_holders_are_this_host_and_process_and_never_the_same():
    ids: list[str] = [holder_id(), holder_id()]
    assert ids[0] != ids[1]
    host, pid, _ = ids[0].split("/")
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))

