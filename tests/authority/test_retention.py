"""Retention under the cluster's lease (issue 11, item 4): the lease holder alone deletes
the orders and authorizations expired longer ago than ``[retention] grace``, and says
so in one log line; certificates stay. On SQLite and PostgreSQL (``replicas``)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta

import pytest

from acme_ca.authority.background import BackgroundWork, Job
from acme_ca.authority.retention import Retention
from acme_ca.clock import FakeClock
from acme_ca.domain.models import OrderStatus
from acme_ca.errors import NotFound
from acme_ca.store import Store
from tests.store.conftest import (
    DER,
    T0,
    make_authorization,
    make_order,
    reservation,
    with_accounts,
)

GRACE = timedelta(days=30)
NOW = T0 + timedelta(days=60)
CUT = NOW - GRACE


async def seed(store: Store) -> None:
    """Five orders expired before the cut (one of them valid, with its certificate), one
    at the cut; each with an authorization of its own."""
    await with_accounts(store)
    for n in range(6):
        expires = CUT if n == 5 else CUT - timedelta(days=1, minutes=n)
        authz = make_authorization(f"az-{n}", f"n{n}.example.test", expires=expires)
        status = OrderStatus.READY if n == 0 else OrderStatus.PENDING
        await store.create_order(make_order(f"order-{n}", [authz], expires=expires,
                                            status=status), [authz])
    await store.start_issuance("order-0", reservation("5e", "order-0"))
    await store.finish_order("order-0", "5e", DER)


async def test_only_the_holder_prunes_and_logs_it(
        replicas: tuple[Store, Store], caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, "acme_ca.authority.retention")
    await seed(replicas[0])
    pruned: Counter[str] = Counter()

    def pruning(name: str, store: Store) -> Job:
        retention = Retention(store, FakeClock(NOW), GRACE)

        async def run() -> None:
            pruned[name] += await retention.prune(batch=2)

        return Job("pruning", run)

    a = BackgroundWork(replicas[0], [pruning("a", replicas[0])], period=0.1, ttl=30)
    b = BackgroundWork(replicas[1], [pruning("b", replicas[1])], period=0.1, ttl=30)
    first = await asyncio.gather(a.step(), b.step())
    assert sorted(first) == [False, True]
    holder, other = (a, b) if first[0] else (b, a)
    assert pruned == {"a" if holder is a else "b": 10}
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"retention: deleted 5 orders and 5 authorizations expired before "
                     f"{CUT.isoformat(timespec='seconds')} ([retention] grace 30d), "
                     f"and 0 full rate-limit buckets"]
    assert await holder.step() and not await other.step()
    assert sum(pruned.values()) == 10 and len(caplog.records) == 1  # nothing left: no line

    reader = replicas[1]
    assert (await reader.get_certificate("5e")).order_id == "order-0"
    assert (await reader.get_order("order-5")).id == "order-5"
    assert (await reader.get_authorization("az-5")).id == "az-5"
    for n in range(5):
        with pytest.raises(NotFound):
            await reader.get_order(f"order-{n}")
        with pytest.raises(NotFound):
            await reader.get_authorization(f"az-{n}")
    await a.close()
    await b.close()


@pytest.mark.parametrize("grace", [timedelta(seconds=-1), timedelta(seconds=1),
                                   timedelta(minutes=59)])
def test_a_grace_under_an_hour_is_refused(grace: timedelta):
    """As ``[retention] grace`` is (``config_policy.read_retention``)."""
    with pytest.raises(ValueError, match="at least 1h"):
        Retention(None, FakeClock(NOW), grace)  # type: ignore[arg-type]


class StalledAuthorizations:
    """The real store, but pruning authorizations never ends (a long backlog)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def prune_authorizations(self, expired_before: object, *, limit: int) -> int:
        await asyncio.sleep(3600)
        return 0


async def test_a_round_cut_short_still_says_what_it_deleted(
        replicas: tuple[Store, Store], caplog: pytest.LogCaptureFixture):
    """The background work's time runs out in the middle (``background.py``): the orders
    already deleted are logged all the same."""
    caplog.set_level(logging.INFO, "acme_ca.authority.retention")
    await seed(replicas[0])
    retention = Retention(StalledAuthorizations(replicas[0]), FakeClock(NOW), GRACE)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await retention.prune(batch=2)
    assert [r.getMessage().split(" expired")[0] for r in caplog.records] == [
        "retention: deleted 5 orders and 0 authorizations"]


async def test_a_wall_clock_step_forward_skips_rounds_until_it_keeps_time(
        store: Store, caplog: pytest.LogCaptureFixture):
    """The wall clock jumps a year ahead between two rounds (a bad NTP server, a VM
    resumed with a wrong clock) while the monotonic clock (``Clock.monotonic``) says a
    minute passed: every row would look expired a year ago, the live ones too, and be
    gone for good. No round prunes until the wall clock has kept time with the monotonic
    one for an hour; the step is said in one warning."""
    caplog.set_level(logging.INFO, "acme_ca.authority.retention")
    await seed(store)
    clock = FakeClock(NOW - timedelta(days=20))  # the right time: nothing expired so long
    retention = Retention(store, clock, GRACE)
    assert await retention.prune() == 0
    clock.advance(timedelta(minutes=1))
    clock.set_wall(clock.now() + timedelta(days=365))
    assert await retention.prune() == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "365d" in warnings[0] and "1m" in warnings[0], warnings
    clock.advance(timedelta(minutes=59))
    assert await retention.prune() == 0  # steady, but not for an hour yet
    assert (await store.get_order("order-5")).id == "order-5"
    clock.advance(timedelta(minutes=1))
    assert await retention.prune() == 12  # kept time for an hour: trusted again
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


async def test_time_that_passes_is_no_step(store: Store, caplog: pytest.LogCaptureFixture):
    """Both clocks move 60 days (a server that just runs): the round prunes; so does one
    after the wall clock stepped back, or forward by less than an hour beyond the time
    that passed (NTP slewing a drift)."""
    await seed(store)
    clock = FakeClock(NOW - timedelta(days=60))
    retention = Retention(store, clock, GRACE)
    assert await retention.prune() == 0
    clock.advance(timedelta(days=60))
    clock.set_wall(clock.now() - timedelta(days=2))
    assert await retention.prune() == 0  # two days back: nothing expired before the cut
    clock.advance(timedelta(days=2))
    clock.set_wall(clock.now() + timedelta(minutes=59))
    assert await retention.prune() == 12
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
