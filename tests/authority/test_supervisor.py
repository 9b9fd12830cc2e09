"""ValidationSupervisor: bounded, fair background validation (RFC 8555 7.5.1; issue "a
validation authority that is safe to run inside a network").

RFC 8555 7.5.1: after the client's POST the challenge is "processing" and the server
validates in the background. The supervisor bounds how many validations run at once,
server-wide (max_in_flight) and per account (max_in_flight_per_account); the rest wait
with their challenge still processing (queued, never failed for load). A flood from one
account must neither exhaust the server nor starve other accounts. The validators are
fakes that block until released; the store is a real in-memory SQLite store. Tests wait
for what the supervisor reports (running, queued) or for a validation's own event, never
for a length of time (tests/waiting.py).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from acme_ca.authority.supervisor import ValidationSupervisor
from acme_ca.clock import FakeClock
from acme_ca.domain.models import ChallengeStatus, Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.store import SqliteStore
from acme_ca.validation.base import ValidationResult
from tests.store.conftest import T0, make_account, make_authorization, make_order
from tests.waiting import until, within

LIFETIME = timedelta(days=30)
Submit = Callable[[str, int], Awaitable[list[str]]]


class Gate:
    """A fake validator: names starting with 'slow' wait for `release`; the others pass.

    It counts validations running at once, overall and per account (the account is the
    name's last label), and the peaks of both.
    """

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: list[str] = []
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.done: dict[str, asyncio.Event] = {}

    def finished(self, name: str) -> asyncio.Event:
        return self.done.setdefault(name, asyncio.Event())

    async def validate(
        self, identifier: Identifier, token: str, key_authorization: str
    ) -> ValidationResult:
        account = identifier.value.rsplit(".", 1)[-1]
        self.calls.append(identifier.value)
        for key in (account, "*"):
            self.running[key] += 1
            self.peak[key] = max(self.peak[key], self.running[key])
        try:
            if identifier.value.startswith("slow"):
                await self.release.wait()
            return ValidationResult(None)
        finally:
            for key in (account, "*"):
                self.running[key] -= 1
            self.finished(identifier.value).set()


@pytest.fixture
async def store() -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(":memory:", clock=FakeClock(T0))
    for account in ("a", "b", "c"):
        await opened.create_account(make_account(account))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def processing(store: SqliteStore) -> Callable[..., Awaitable[list[str]]]:
    """processing(account, names) -> challenge ids, each PROCESSING (as after the POST)."""
    orders = 0

    async def make(account: str, names: list[str]) -> list[str]:
        nonlocal orders
        orders += 1
        authzs = [
            make_authorization(f"{account}-{orders}-{i}", name, account_id=account)
            for i, name in enumerate(names)
        ]
        await store.create_order(
            make_order(f"o-{account}-{orders}", authzs, account_id=account), authzs
        )
        ids = [authz.challenges[0].id for authz in authzs]
        for challenge_id in ids:
            await store.update_challenge(
                challenge_id, expected=ChallengeStatus.PENDING, status=ChallengeStatus.PROCESSING
            )
        return ids

    return make


def supervisor(store: SqliteStore, validator: Gate, **limits: float) -> ValidationSupervisor:
    return ValidationSupervisor(
        store,
        FakeClock(T0),
        {"http-01": validator},
        valid_authorization_lifetime=LIFETIME,
        **limits,
    )  # type: ignore[arg-type]


async def statuses(store: SqliteStore, ids: list[str]) -> Counter[ChallengeStatus]:
    return Counter([(await store.get_challenge(i)).status for i in ids])


async def settle(sup: ValidationSupervisor) -> None:
    await within(sup.wait_idle(), "every validation to end")


async def all_placed(sup: ValidationSupervisor, account: str | None, count: int) -> None:
    """Until `count` validations of `account` (or all) run or wait for a slot: with the
    slow ones blocked, nothing moves after that until the test releases them."""
    await until(lambda: sup.running(account) + sup.queued(account) == count,
                f"{count} validations hold or await a slot")


async def test_a_flood_from_one_account_does_not_starve_another(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]]
):
    """Account a submits 50 slow validations, then b one: b's completes at once, while a
    never holds more than its per-account share, and a's 50 wait instead of failing."""
    gate = Gate()
    sup = supervisor(store, gate, max_in_flight=8, max_in_flight_per_account=4)
    flood = await processing("a", [f"slow{i}.a" for i in range(50)])
    (single,) = await processing("b", ["www.b"])
    for challenge_id in flood:
        sup.submit(challenge_id)
    sup.submit(single)
    # a's validations never end before the release: b's can end only if not starved
    await within(gate.finished("www.b").wait(), "b's validation, beside a's flood")
    await all_placed(sup, "a", 50)
    assert gate.peak["a"] == 4
    assert (sup.running("a"), sup.queued("a")) == (4, 46)
    assert sup.running() <= 8
    assert await statuses(store, flood) == Counter({ChallengeStatus.PROCESSING: 50})
    gate.release.set()
    await settle(sup)
    assert await statuses(store, flood) == Counter({ChallengeStatus.VALID: 50})
    assert gate.peak["a"] == 4
    assert sup.running() == 0


async def test_global_limit_holds_across_accounts(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]]
):
    """max_in_flight bounds the server whatever the number of accounts."""
    gate = Gate()
    sup = supervisor(store, gate, max_in_flight=3, max_in_flight_per_account=2)
    ids = [
        i
        for account in "abc"
        for i in await processing(account, [f"slow{n}.{account}" for n in range(2)])
    ]
    for challenge_id in ids:
        sup.submit(challenge_id)
    await all_placed(sup, None, 6)
    assert gate.peak["*"] == 3
    assert (sup.running(), sup.queued()) == (3, 3)
    gate.release.set()
    await settle(sup)
    assert gate.peak["*"] == 3
    assert await statuses(store, ids) == Counter({ChallengeStatus.VALID: 6})


async def test_per_account_limit_applies_when_the_server_is_idle(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]]
):
    """With free global slots, one account still runs at most its own limit at once."""
    gate = Gate()
    sup = supervisor(store, gate, max_in_flight=64, max_in_flight_per_account=2)
    ids = await processing("a", [f"slow{n}.a" for n in range(10)])
    for challenge_id in ids:
        sup.submit(challenge_id)
    await all_placed(sup, "a", 10)
    assert (gate.peak["a"], sup.running("a"), sup.queued("a")) == (2, 2, 8)
    gate.release.set()
    await settle(sup)
    assert gate.peak["a"] == 2
    assert len(gate.calls) == 10
    assert await statuses(store, ids) == Counter({ChallengeStatus.VALID: 10})


async def test_time_spent_queued_does_not_count_against_the_timeout(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]]
):
    """One account's single slot: two validations that ignore their deadline hold it in
    turn until each is cancelled (timeout + grace), so the third waits twice that long
    and still gets its whole time limit: it is valid, the two others invalid."""
    gate = Gate()  # 'slow' names never finish on their own
    sup = supervisor(store, gate, max_in_flight_per_account=1, timeout=0.05, grace=0.05)
    ids = await processing("a", ["slow1.a", "slow2.a", "www.a"])
    for challenge_id in ids:
        sup.submit(challenge_id)
    await settle(sup)
    assert [(await store.get_challenge(i)).status for i in ids] == [
        ChallengeStatus.INVALID, ChallengeStatus.INVALID, ChallengeStatus.VALID]
    assert gate.calls == ["slow1.a", "slow2.a", "www.a"]


async def test_a_validator_that_ignores_its_deadline_is_cancelled(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]]
):
    """timeout + grace later the validation fails with a precise connection problem
    (it never ends by itself: settle's deadline fails the test if it is not cancelled)."""
    gate = Gate()  # 'slow' names never finish on their own
    sup = supervisor(store, gate, timeout=0.05, grace=0.05)
    (challenge_id,) = await processing("a", ["slow.a"])
    sup.submit(challenge_id)
    await settle(sup)
    challenge = await store.get_challenge(challenge_id)
    assert challenge.status is ChallengeStatus.INVALID
    assert challenge.error is not None
    problem = json.loads(challenge.error)
    assert problem["type"] == ProblemType.CONNECTION.urn
    assert problem["detail"] == (
        "validation of slow.a did not finish within its time limit of 0.05s"
    )
    assert sup.running() == 0


async def test_a_challenge_settled_while_queued_is_not_validated(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]]
):
    """The status is read again once a slot is granted: no work for a settled challenge."""
    gate = Gate()
    sup = supervisor(store, gate, max_in_flight_per_account=1)
    first, queued = await processing("a", ["slow.a", "www.a"])
    sup.submit(first)
    sup.submit(queued)
    await all_placed(sup, "a", 2)
    assert (sup.running("a"), sup.queued("a")) == (1, 1)
    await store.update_challenge(
        queued, expected=ChallengeStatus.PROCESSING, status=ChallengeStatus.INVALID
    )
    gate.release.set()
    await settle(sup)
    assert gate.calls == ["slow.a"]


async def test_close_leaves_queued_challenges_processing_for_resume(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]]
):
    """Shutdown cancels running and queued validations; they stay processing, and the
    holder of the background lease resumes them (a NULL processing_since, as these
    challenges have, counts as processing forever)."""
    gate = Gate()
    sup = supervisor(store, gate, max_in_flight_per_account=2)
    ids = await processing("a", [f"slow{n}.a" for n in range(5)])
    for challenge_id in ids:
        sup.submit(challenge_id)
    await all_placed(sup, "a", 5)
    assert (sup.running("a"), sup.queued("a")) == (2, 3)
    await sup.close(grace=0.05)
    assert await statuses(store, ids) == Counter({ChallengeStatus.PROCESSING: 5})
    assert sup.running() == 0
    gate.release.set()
    again = supervisor(store, gate)
    assert await again.resume_stopped() == 5
    await settle(again)
    assert await statuses(store, ids) == Counter({ChallengeStatus.VALID: 5})


def test_limits_must_be_positive(store: SqliteStore):
    with pytest.raises(ValueError, match="at least 1"):
        supervisor(store, Gate(), max_in_flight_per_account=0)


class RecordingCaa:
    """A CAA checker that refuses names starting with 'forbidden' and records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, str, str]] = []

    async def check(self, identifier: Identifier, *, wildcard: bool, account_uri: str,
                    method: str) -> Any:
        from acme_ca.domain.problems import AcmeProblem

        self.calls.append((identifier.value, wildcard, account_uri, method))
        if identifier.value.startswith("forbidden"):
            return AcmeProblem(ProblemType.CAA, f"CAA at {identifier.value} forbids this CA",
                               status=403)
        return None


async def test_caa_is_checked_after_a_successful_validation(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]]
):
    """RFC 8659 3 / RFC 8657: CAA is checked at validation time with the account URI and
    the validation method; a refusal makes the challenge invalid with a caa problem, and a
    failed validation is not followed by a CAA lookup."""
    caa = RecordingCaa()
    sup = ValidationSupervisor(store, FakeClock(T0), {"http-01": Gate()},
                               valid_authorization_lifetime=LIFETIME, caa=caa,  # type: ignore[arg-type]
                               account_uri=lambda a: f"https://ca.test/acme/acct/{a}")
    ok, refused = await processing("a", ["www.a", "forbidden.a"])
    sup.submit(ok)
    sup.submit(refused)
    await settle(sup)
    assert (await store.get_challenge(ok)).status is ChallengeStatus.VALID
    bad = await store.get_challenge(refused)
    assert bad.status is ChallengeStatus.INVALID
    assert json.loads(bad.error or "{}")["type"].endswith(":caa")
    assert sorted(caa.calls) == [
        ("forbidden.a", False, "https://ca.test/acme/acct/a", "http-01"),
        ("www.a", False, "https://ca.test/acme/acct/a", "http-01"),
    ]


class Refusing:
    """A validator that fails, recording the address it connected to (as http-01 does)."""

    async def validate(
        self, identifier: Identifier, token: str, key_authorization: str
    ) -> ValidationResult:
        problem = AcmeProblem(ProblemType.CONNECTION, f"connecting to {identifier.value}:80 "
                              "failed: connection refused")
        return ValidationResult(problem, ({"address_used": "10.7.7.7"},))


async def test_a_failed_validation_logs_its_records_for_the_operator(
    store: SqliteStore, processing: Callable[..., Awaitable[list[str]]],
    caplog: pytest.LogCaptureFixture,
):
    """The address a name resolved to never reaches the client (RFC 8555 10.2,
    tests/validation/test_no_probe.py); the operator's log keeps it."""
    sup = ValidationSupervisor(store, FakeClock(T0), {"http-01": Refusing()},
                               valid_authorization_lifetime=LIFETIME)  # type: ignore[dict-item]
    (refused,) = await processing("a", ["www.a"])
    with caplog.at_level("INFO", logger="acme_ca.authority.supervisor"):
        sup.submit(refused)
        await settle(sup)
    challenge = await store.get_challenge(refused)
    assert "10.7.7.7" not in (challenge.error or "")
    assert "10.7.7.7" in caplog.text
