"""Validations whose process stopped are finished by a survivor (issue 10, item 3; RFC
8555 7.5.1: a challenge that is "processing" must end valid or invalid).

A challenge POST stamps ``processing_since``; the holder of the background lease resumes
challenges processing for longer than a validation lasts in a live process
(``ValidationSupervisor.stale_after``), except those its own supervisor runs. Real stores: two
on one database (two replicas), SQLite and PostgreSQL; the time compared is the
process's, a FakeClock; the validator is a fake that holds until released.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from acme_ca.authority.authorizations import AuthorizationService
from acme_ca.authority.background import BackgroundWork, Job
from acme_ca.authority.supervisor import ValidationSupervisor
from acme_ca.clock import FakeClock
from acme_ca.domain.models import ChallengeStatus, Identifier
from acme_ca.store import Store
from acme_ca.validation.base import ValidationResult
from tests.store.conftest import T0, make_account, make_authorization, make_order
from tests.waiting import until, within

ACCOUNT = "acct"
TICK = timedelta(microseconds=1)


class Held:
    """A validator that passes, once released; it records what it was asked."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: list[str] = []

    async def validate(self, identifier: Identifier, token: str,
                       key_authorization: str) -> ValidationResult:
        self.calls.append(identifier.value)
        await self.release.wait()
        return ValidationResult(None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def stores(replicas: tuple[Store, Store]) -> tuple[Store, Store]:
    """Two replicas on one database, with the account the orders name."""
    await replicas[0].create_account(make_account(ACCOUNT))
    return replicas


@pytest.fixture
def store(stores: tuple[Store, Store]) -> Store:
    return stores[0]


def supervisor(store: Store, clock: FakeClock, validator: Held) -> ValidationSupervisor:
    return ValidationSupervisor(store, clock, {"http-01": validator},
                                valid_authorization_lifetime=timedelta(days=30),
                                timeout=10, grace=1)


async def challenges(store: Store, *names: str, since: datetime | None = T0,
                     status: ChallengeStatus = ChallengeStatus.PROCESSING) -> list[str]:
    """One pending order with an authorization per name; the ids of their challenges,
    moved to ``status`` (processing since ``since``, as a challenge POST leaves them)."""
    authzs = [make_authorization(f"authz-{name}", name, account_id=ACCOUNT) for name in names]
    await store.create_order(make_order(f"order-{names[0]}", authzs, account_id=ACCOUNT), authzs)
    ids = [authz.challenges[0].id for authz in authzs]
    if status is ChallengeStatus.PROCESSING:
        for challenge_id in ids:
            await store.update_challenge(challenge_id, expected=ChallengeStatus.PENDING,
                                         status=status, processing_since=since)
    return ids


async def settle(sup: ValidationSupervisor, validator: Held) -> None:
    validator.release.set()
    await within(sup.wait_idle(), "the validations to end")


async def test_a_challenge_left_processing_is_resumed_once_stale_and_once_only(
    store: Store, clock: FakeClock
):
    """Not before a validation could still be running elsewhere (``stale_after``); then
    once: while it runs here, later periods leave it alone; once settled, it is gone."""
    (challenge_id,) = await challenges(store, "left.example")
    validator = Held()
    sup = supervisor(store, clock, validator)
    assert sup.stale_after == timedelta(seconds=11) + timedelta(seconds=5)
    clock.advance(sup.stale_after - TICK)
    assert await sup.resume_stopped() == 0
    clock.advance(TICK)
    assert await sup.resume_stopped() == 1
    clock.advance(timedelta(hours=1))
    assert await sup.resume_stopped() == 0  # in flight here: not twice
    await settle(sup, validator)
    assert await sup.resume_stopped() == 0
    assert validator.calls == ["left.example"]
    assert (await store.get_challenge(challenge_id)).status is ChallengeStatus.VALID


async def test_a_challenge_without_processing_since_counts_as_stale(
    store: Store, clock: FakeClock
):
    """Rows from before processing_since existed: processing forever, so resumed."""
    await challenges(store, "old.example", since=None)
    validator = Held()
    sup = supervisor(store, clock, validator)
    assert await sup.resume_stopped() == 1
    await settle(sup, validator)
    assert validator.calls == ["old.example"]


async def test_a_validation_in_flight_in_this_process_is_not_resubmitted(
    store: Store, clock: FakeClock
):
    """Handed over by a challenge POST and still running (a slow server, a validator
    waiting for its slot) past ``stale_after``: this process runs it, it is not stale."""
    (challenge_id,) = await challenges(store, "slow.example")
    validator = Held()
    sup = supervisor(store, clock, validator)
    sup.submit(challenge_id)
    clock.advance(timedelta(hours=1))
    assert await sup.resume_stopped() == 0
    assert sup.submit(challenge_id) is sup.submit(challenge_id)  # one task per challenge
    await settle(sup, validator)
    assert validator.calls == ["slow.example"]


async def test_validations_in_flight_never_fill_a_batch(store: Store, clock: FakeClock):
    """Stale challenges that this process runs are skipped without hiding those behind
    them, however small the batch."""
    running = await challenges(store, "a-running.example", "b-running.example")
    await challenges(store, "c-left.example", since=T0 + TICK)
    validator = Held()
    sup = supervisor(store, clock, validator)
    for challenge_id in running:
        sup.submit(challenge_id)
    clock.advance(timedelta(hours=1))
    assert await sup.resume_stopped(batch=1) == 1
    await settle(sup, validator)
    assert sorted(validator.calls) == ["a-running.example", "b-running.example",
                                       "c-left.example"]


async def test_a_challenge_post_stamps_when_processing_began(
    stores: tuple[Store, Store], clock: FakeClock
):
    """RFC 8555 7.5.1: the POST moves the challenge to processing. Another process's
    supervisor (which does not run it) takes it only once it is stale, counted from the
    POST, not before."""
    store, other = stores
    (challenge_id,) = await challenges(store, "posted.example",
                                       status=ChallengeStatus.PENDING)
    clock.advance(timedelta(days=1))
    here, elsewhere = Held(), Held()
    sup = supervisor(store, clock, here)
    answered = await AuthorizationService(store, clock, sup).respond(
        make_account(ACCOUNT), challenge_id)
    assert answered.status is ChallengeStatus.PROCESSING
    survivor = supervisor(other, clock, elsewhere)
    clock.advance(survivor.stale_after - TICK)
    assert await survivor.resume_stopped() == 0
    clock.advance(TICK)
    assert await survivor.resume_stopped() == 1
    await settle(sup, here)
    await settle(survivor, elsewhere)
    assert (here.calls, elsewhere.calls) == (["posted.example"], ["posted.example"])
    assert (await store.get_challenge(challenge_id)).status is ChallengeStatus.VALID


async def test_only_the_lease_holder_resumes_and_a_survivor_finishes_after_it_stops(
    stores: tuple[Store, Store], clock: FakeClock
):
    """Two replicas: the holder of the lease resumes the stale challenge, the other does
    not. The holder stops (its validation cancelled at shutdown, the lease released):
    the survivor takes over and finishes it; no challenge is left processing."""
    (challenge_id,) = await challenges(stores[0], "survivor.example")
    clock.advance(timedelta(hours=1))
    validators = [Held(), Held()]
    sups = [supervisor(s, clock, v) for s, v in zip(stores, validators, strict=True)]
    works = [BackgroundWork(s, [Job("resume", sup.resume_stopped)], period=0.1, ttl=60)
             for s, sup in zip(stores, sups, strict=True)]
    assert await works[0].step()
    assert not await works[1].step()
    await until(lambda: bool(validators[0].calls), "the holder to validate")
    assert (validators[0].calls, validators[1].calls) == (["survivor.example"], [])
    await sups[0].close(grace=0)
    await works[0].close()
    assert (await stores[1].get_challenge(challenge_id)).status is ChallengeStatus.PROCESSING
    assert await works[1].step()
    await settle(sups[1], validators[1])
    assert validators[1].calls == ["survivor.example"]
    assert (await stores[1].get_challenge(challenge_id)).status is ChallengeStatus.VALID


async def test_a_challenge_whose_authorization_was_settled_meanwhile_ends_and_is_not_resumed(
    store: Store, clock: FakeClock
):
    """RFC 8555 7.1.6: the client answered both challenges of one authorization and the
    other validated first; or it deactivated the authorization (7.5.2) while this one
    was processing. The challenge still ends with its result, so the holder of the lease
    finds nothing to resume, period after period (neither endless re-validations nor a
    batch filled with them)."""
    authz = make_authorization("authz-two", "two.example", account_id=ACCOUNT,
                               types=("http-01", "dns-01"))
    gone = make_authorization("authz-gone", "gone.example", account_id=ACCOUNT)
    await store.create_order(make_order("order-two", [authz], account_id=ACCOUNT), [authz])
    await store.create_order(make_order("order-gone", [gone], account_id=ACCOUNT), [gone])
    http, dns = Held(), Held()
    sup = ValidationSupervisor(store, clock, {"http-01": http, "dns-01": dns},
                               valid_authorization_lifetime=timedelta(days=30),
                               timeout=10, grace=1)
    service = AuthorizationService(store, clock, sup)
    account = make_account(ACCOUNT)
    for challenge_id in ("authz-two-dns-01", "authz-two-http-01", "authz-gone-http-01"):
        await service.respond(account, challenge_id)
    await service.deactivate(account, "authz-gone", {"status": "deactivated"})
    http.release.set()  # the http-01 challenges first
    await until(lambda: sup.running() == 1, "the http-01 validations to end")
    await settle(sup, dns)
    statuses = {c: (await store.get_challenge(c)).status
                for c in ("authz-two-dns-01", "authz-two-http-01", "authz-gone-http-01")}
    assert set(statuses.values()) == {ChallengeStatus.VALID}, statuses
    assert (await store.get_authorization("authz-gone")).status.value == "deactivated"
    clock.advance(timedelta(hours=1))
    for _ in range(3):
        assert await sup.resume_stopped(batch=1) == 0
    assert (http.calls, dns.calls) == (["two.example", "gone.example"], ["two.example"])
