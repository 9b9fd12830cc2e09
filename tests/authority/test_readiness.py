"""The checks behind /readyz (issue 13 item 1), each failing on its own: a closed or
slow store, an intermediate key that does not sign for its certificate, a CA
certificate 29 days from expiry (an injected clock), no holder of the background lease.
What involves the store runs on both backends (``db``: SQLite, then PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.authority.background import LEASE
from acme_ca.authority.readiness import (
    LEASE_GRACE,
    SIGNING_CACHE,
    STORE_CACHE,
    Check,
    Readiness,
    certificates_check,
)
from acme_ca.clock import FakeClock
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.signer import FileSigner
from acme_ca.store.base import Store

HOUR = timedelta(hours=1)


def failing(checks: object) -> dict[str, str]:
    assert isinstance(checks, tuple | list)
    return {c.name: c.detail for c in checks if isinstance(c, Check) and not c.ok}


@pytest.fixture
def clock(issuer: Issuer) -> FakeClock:
    return FakeClock(issuer.certificate.not_valid_before_utc + timedelta(days=1))


async def test_everything_ready_when_the_lease_is_held_and_the_ca_is_sound(
    db: Store, issuer: Issuer, clock: FakeClock
):
    """The baseline the other tests break one check at a time."""
    assert await db.hold_lease(LEASE, "replica-a", HOUR) is not None
    checks = await Readiness(db, lambda: issuer, clock).checks()
    assert [c.name for c in checks] == ["store", "signing", "certificates", "background_lease"]
    assert failing(checks) == {}


async def test_no_lease_holder_fails_only_the_background_lease(
    db: Store, issuer: Issuer, clock: FakeClock
):
    """Nobody holds the background lease (never taken, or released for good): nothing
    ends orders left processing, nothing expires, no CRL is published. The gap while a
    survivor takes over a dead holder's lease (at most a period) is not a failure."""
    readiness = Readiness(db, lambda: issuer, clock)
    assert set(failing(await readiness.checks())) == {"background_lease"}
    assert await db.hold_lease(LEASE, "replica-a", HOUR) is not None
    clock.advance(timedelta(seconds=STORE_CACHE))  # the store's answer is reused a while
    assert failing(await readiness.checks()) == {}
    await db.release_lease(LEASE, "replica-a")
    clock.advance(timedelta(seconds=LEASE_GRACE - 0.5))
    assert failing(await readiness.checks()) == {}  # a takeover's gap
    clock.advance(timedelta(seconds=STORE_CACHE))  # past the grace, and the cached answer
    assert "no process holds" in failing(await readiness.checks())["background_lease"]


async def test_a_closed_store_fails_the_store_and_the_lease_and_never_raises(
    db: Store, issuer: Issuer, clock: FakeClock
):
    assert await db.hold_lease(LEASE, "replica-a", HOUR) is not None
    await db.close()
    failed = failing(await Readiness(db, lambda: issuer, clock).checks())
    assert set(failed) == {"store", "background_lease"}
    assert failed["store"].startswith("the database cannot be read")


class CountingStore:
    """A lease store that counts its reads and answers after ``delay`` seconds."""

    def __init__(self, inner: Store, delay: float = 0.0) -> None:
        self.inner, self.delay, self.reads = inner, delay, 0

    async def lease_holder(self, name: str) -> object:
        self.reads += 1
        await asyncio.sleep(self.delay)
        return await self.inner.lease_holder(name)


async def test_a_flood_of_probes_is_one_store_read_a_while(
    db: Store, issuer: Issuer, clock: FakeClock
):
    """Issue 13 item 1: /readyz is open to anyone who reaches the ACME listener. A
    hundred probes at once, then more within ``STORE_CACHE``, read the store once (each
    used to be a read, and a slow database held one connection per probe); once the
    answer is ``STORE_CACHE`` old the next probe reads again."""
    assert await db.hold_lease(LEASE, "replica-a", HOUR) is not None
    counting = CountingStore(db, delay=0.05)
    readiness = Readiness(counting, lambda: issuer, clock)  # type: ignore[arg-type]
    answers = await asyncio.gather(*(readiness.checks() for _ in range(100)))
    assert all(failing(a) == {} for a in answers) and counting.reads == 1
    clock.advance(timedelta(seconds=STORE_CACHE / 2))
    assert failing(await readiness.checks()) == {} and counting.reads == 1
    clock.advance(timedelta(seconds=STORE_CACHE / 2))
    assert failing(await readiness.checks()) == {} and counting.reads == 2


class BrokenStore:
    async def lease_holder(self, name: str) -> object:
        raise OSError("connection to 10.20.30.40:5432 as acme_admin failed")


async def test_a_store_error_names_no_host_or_user_on_the_wire(issuer: Issuer,
                                                              clock: FakeClock):
    """/readyz answers anonymous clients: the failure says what kind of error it was,
    not the exception's text (a database host, port, user or name)."""
    readiness = Readiness(BrokenStore(), lambda: issuer, clock)  # type: ignore[arg-type]
    detail = failing(await readiness.checks())["store"]
    assert detail == "the database cannot be read: OSError (the server's log has more)"


async def test_a_database_slower_than_the_timeout_fails_the_store_in_time(
    issuer: Issuer, clock: FakeClock
):
    """PostgreSQL with the leases table locked by another session: the read waits; the
    check gives up after its timeout instead of holding the load balancer's probe."""
    import asyncpg

    from acme_ca.store import open_store
    from tests.store.pg import fresh_database

    async with fresh_database() as url:
        store = await open_store(url)
        blocker = await asyncpg.connect(url)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE leases IN ACCESS EXCLUSIVE MODE")
                loop = asyncio.get_running_loop()
                started = loop.time()
                checks = await Readiness(store, lambda: issuer, clock,
                                         store_timeout=0.3).checks()
                assert loop.time() - started < 2.0
            assert failing(checks)["store"] == "the database did not answer within 0.3s"
        finally:
            await blocker.close()
            await store.close()


async def test_a_key_that_does_not_match_its_certificate_fails_signing_cached_a_while(
    db: Store, issuer: Issuer, clock: FakeClock
):
    """The key swapped under a running server (what ``Issuer.load`` refuses at start):
    signing fails. A result is reused for SIGNING_CACHE seconds of the same
    intermediate, then checked again."""
    assert await db.hold_lease(LEASE, "replica-a", HOUR) is not None
    current = [issuer]
    readiness = Readiness(db, lambda: current[0], clock)
    assert failing(await readiness.checks()) == {}
    current[0] = replace(issuer, signer=FileSigner(ec.generate_private_key(ec.SECP256R1())))
    assert failing(await readiness.checks()) == {}  # cached: one signature per few seconds
    clock.advance(timedelta(seconds=SIGNING_CACHE))
    failed = failing(await readiness.checks())
    assert set(failed) == {"signing"}
    assert "does not verify" in failed["signing"]


async def test_another_intermediate_is_checked_at_once(
    db: Store, issuer: Issuer, clock: FakeClock
):
    """A reload to another intermediate is not hidden by the cache of the previous one."""
    assert await db.hold_lease(LEASE, "replica-a", HOUR) is not None
    current = [issuer]
    readiness = Readiness(db, lambda: current[0], clock)
    assert failing(await readiness.checks()) == {}
    current[0] = replace(issuer, signer=FileSigner(ec.generate_private_key(ec.SECP256R1())),
                         fingerprint="another")
    assert set(failing(await readiness.checks())) == {"signing"}


def test_an_intermediate_29_days_from_expiry_fails_and_31_days_passes(issuer: Issuer):
    expiry = issuer.certificate.not_valid_after_utc
    assert certificates_check(issuer, expiry - timedelta(days=31)).ok
    check = certificates_check(issuer, expiry - timedelta(days=29))
    assert not check.ok
    assert "the intermediate certificate expires on" in check.detail
    assert "in 29 days" in check.detail and "root" not in check.detail.split(";")[0]


def test_a_root_29_days_from_expiry_fails(issuer: Issuer):
    """The root (here it outlives the intermediate, so both are named)."""
    check = certificates_check(issuer, issuer.root.not_valid_after_utc - timedelta(days=29))
    assert not check.ok and "the root certificate expires on" in check.detail


async def test_the_readiness_clock_decides_expiry(db: Store, issuer: Issuer):
    """The injected clock, not the machine's, decides: the whole check set fails
    ``certificates`` alone 29 days before the intermediate expires."""
    assert await db.hold_lease(LEASE, "replica-a", HOUR) is not None
    clock = FakeClock(issuer.certificate.not_valid_after_utc - timedelta(days=29))
    assert set(failing(await Readiness(db, lambda: issuer, clock).checks())) == {"certificates"}
