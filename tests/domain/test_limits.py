"""Rate limits as GCRA (acme_ca/domain/limits.py): ``decide`` and ``refund`` as pure
functions of the stored TAT and the time, checked against Boulder's ratelimits
(ratelimits/gcra.go: emission interval ``period // count``, burst ``count``).

What "COUNT/PERIOD" promises, as a token bucket does (Boulder's README: "Rate Limit
Structure"): a burst of at most ``count`` at once, then one every ``period / count``.
So in a window of length W at most ``count + W / interval`` pass; a sliding window of
one whole period may see up to ``2 * count - 1`` (a full burst, then the refill), which
is Boulder's behaviour too, and the long-run rate is never above ``count`` per period.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acme_ca.domain.limits import decide, interval, refund

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)


def spend_all(tat: datetime | None, now: datetime, n: int, *, count: int,
              period: timedelta) -> tuple[datetime | None, int]:
    """``n`` spends of one at ``now``: (the TAT after, how many were allowed)."""
    allowed = 0
    for _ in range(n):
        decision = decide(tat, now, count=count, period=period)
        if decision.allowed:
            allowed += 1
            tat = decision.tat
    return tat, allowed


# --- examples ---------------------------------------------------------------------------


def test_a_full_bucket_lets_count_through_at_once_then_refuses():
    tat, allowed = spend_all(None, NOW, 5, count=3, period=3 * SECOND)
    assert allowed == 3
    assert tat == NOW + 3 * SECOND
    refused = decide(tat, NOW, count=3, period=3 * SECOND)
    assert not refused.allowed
    assert refused.tat == tat  # unchanged when refused
    assert refused.retry_at == NOW + SECOND  # one refills every period / count
    assert refused.resets_at == NOW + 3 * SECOND  # full again


def test_an_allowed_spend_says_when_the_bucket_is_full_again():
    decision = decide(None, NOW, count=300, period=3 * HOUR)
    assert decision.allowed
    assert decision.tat == NOW + timedelta(seconds=36)  # 3h / 300
    assert decision.retry_at == NOW
    assert decision.resets_at == decision.tat


def test_one_refills_every_interval():
    tat, _ = spend_all(None, NOW, 300, count=300, period=3 * HOUR)
    assert not decide(tat, NOW + timedelta(seconds=35), count=300, period=3 * HOUR).allowed
    assert decide(tat, NOW + timedelta(seconds=36), count=300, period=3 * HOUR).allowed


def test_a_passed_tat_is_a_full_bucket_as_no_row_is():
    old = NOW - 10 * HOUR
    assert decide(old, NOW, count=2, period=HOUR) == decide(None, NOW, count=2, period=HOUR)


def test_cost_zero_asks_without_spending():
    full = decide(None, NOW, count=2, period=HOUR, cost=0)
    assert full.allowed and full.tat == NOW and full.retry_at == NOW
    tat, _ = spend_all(None, NOW, 2, count=2, period=HOUR)
    asked = decide(tat, NOW, count=2, period=HOUR, cost=0)
    assert not asked.allowed
    assert asked.tat == tat
    assert asked.retry_at == NOW + HOUR / 2


def test_a_refund_gives_back_what_a_spend_took_never_before_now():
    tat, _ = spend_all(None, NOW, 2, count=2, period=HOUR)
    assert refund(tat, NOW, count=2, period=HOUR) == NOW + HOUR / 2
    assert refund(tat, NOW, count=2, period=HOUR, cost=2) == NOW
    assert refund(NOW + HOUR / 2, NOW + HOUR / 4, count=2, period=HOUR) == NOW + HOUR / 4
    assert refund(None, NOW, count=2, period=HOUR) is None  # a full bucket: nothing to do
    assert refund(NOW - SECOND, NOW, count=2, period=HOUR) is None


def test_the_interval_is_floored_to_the_microsecond_as_boulder_floors_nanoseconds():
    assert interval(3, timedelta(microseconds=10)) == timedelta(microseconds=3)
    _, allowed = spend_all(None, NOW, 4, count=3, period=timedelta(microseconds=10))
    assert allowed == 3  # a burst of count, whatever the rounding


@pytest.mark.parametrize(("count", "period", "cost", "why"), [
    (0, HOUR, 1, "count must be at least 1"), (-1, HOUR, 1, "count must be at least 1"),
    (2, HOUR, -1, "a cost must be from 0"), (2, HOUR, 3, "a cost must be from 0"),
    (2, timedelta(microseconds=1), 1, "faster than one a microsecond"),
    (1, timedelta(0), 1, "faster than one a microsecond"),
])
def test_impossible_limits_and_costs_are_programming_errors(count, period, cost, why):
    with pytest.raises(ValueError, match=why):
        decide(None, NOW, count=count, period=period, cost=cost)
    with pytest.raises(ValueError, match=why):
        refund(NOW + HOUR, NOW, count=count, period=period, cost=cost)


def test_a_naive_datetime_is_refused():
    with pytest.raises(ValueError, match="naive datetime"):
        decide(None, datetime(2026, 1, 1), count=1, period=HOUR)


# --- properties -------------------------------------------------------------------------

LIMITS = st.tuples(st.integers(1, 50),
                   st.integers(1, 10_000).map(lambda s: timedelta(seconds=s)))
# Requests: the time since the previous one (often none: bursts), and its cost.
REQUESTS = st.lists(
    st.tuples(st.one_of(st.just(0), st.integers(0, 20_000_000_000)).map(
        lambda us: timedelta(microseconds=us)), st.integers(0, 3)),
    max_size=120)


def run(limit: tuple[int, timedelta], requests: list[tuple[timedelta, int]]
        ) -> tuple[list[tuple[datetime, int]], datetime | None, datetime]:
    """Every request against one bucket: (the spends allowed, as (time, cost); the TAT
    at the end; the time at the end)."""
    count, period = limit
    tat: datetime | None = None
    now = NOW
    allowed: list[tuple[datetime, int]] = []
    for gap, cost in requests:
        now += gap
        cost = min(cost, count)
        decision = decide(tat, now, count=count, period=period, cost=cost)
        if decision.allowed and cost:
            allowed.append((now, cost))
        if cost and not decision.allowed:
            assert decision.tat == tat  # a refusal stores nothing new
        tat = decision.tat if cost else tat
    return allowed, tat, now


@settings(max_examples=300)
@given(LIMITS, REQUESTS)
def test_never_more_than_count_at_once_nor_above_count_per_period(limit, requests):
    """In any window [a, b] the spends allowed total at most count + (b - a) / interval:
    never more than ``count`` in a burst (a window shorter than one interval), and never
    more than ``count`` per ``period`` in the long run (RFC 8555 6.6 leaves the policy
    to the server; this is Boulder's)."""
    count, period = limit
    step = interval(count, period)
    allowed, _, _ = run(limit, requests)
    for first in range(len(allowed)):
        spent = 0
        for last in range(first, len(allowed)):
            spent += allowed[last][1]
            window = allowed[last][0] - allowed[first][0]
            assert spent <= count + window // step, (first, last, allowed)


@settings(max_examples=300)
@given(LIMITS, REQUESTS, st.integers(0, 5_000_000).map(lambda us: timedelta(microseconds=us)))
def test_after_a_period_of_quiet_the_bucket_is_full(limit, requests, extra):
    count, period = limit
    _, tat, now = run(limit, requests)
    quiet = now + period + extra
    _, allowed = spend_all(tat, quiet, count + 1, count=count, period=period)
    assert allowed == count


@settings(max_examples=300)
@given(LIMITS, REQUESTS, st.integers(0, 3))
def test_cost_zero_only_asks_whether_one_more_fits(limit, requests, gap_s):
    count, period = limit
    _, tat, now = run(limit, requests)
    now += timedelta(seconds=gap_s)
    asked = decide(tat, now, count=count, period=period, cost=0)
    one = decide(tat, now, count=count, period=period, cost=1)
    assert asked.allowed == one.allowed
    assert asked.tat == max(tat or now, now)  # the same bucket: a passed TAT is a full one
    assert asked.retry_at == one.retry_at


@settings(max_examples=300)
@given(LIMITS, REQUESTS, st.integers(1, 3))
def test_a_refused_request_fits_exactly_at_its_retry_time_and_a_refund_undoes_a_spend(
        limit, requests, cost):
    count, period = limit
    cost = min(cost, count)
    _, tat, now = run(limit, requests)
    decision = decide(tat, now, count=count, period=period, cost=cost)
    if decision.allowed:
        assert decision.retry_at == now
        assert decision.resets_at == decision.tat
        back = refund(decision.tat, now, count=count, period=period, cost=cost)
        assert back == max(tat or now, now)
        return
    assert decision.tat == tat and decision.retry_at > now
    assert decision.resets_at >= decision.retry_at
    before = decision.retry_at - timedelta(microseconds=1)
    assert not decide(tat, before, count=count, period=period, cost=cost).allowed
    assert decide(tat, decision.retry_at, count=count, period=period, cost=cost).allowed
