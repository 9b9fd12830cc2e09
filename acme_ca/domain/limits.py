"""Rate limits as GCRA (the generic cell rate algorithm), as Boulder's ratelimits keep them.

A limit of ``count`` per ``period`` is a bucket of ``count`` that refills one every
``interval = period / count`` (floored to the microsecond, as Boulder floors it to the
nanosecond). Its whole state is one instant, the theoretical arrival time (TAT): the
bucket is full when the TAT is now or past, and a request costing ``cost`` fits when
``max(tat, now) + cost * interval - now <= count * interval``. So a backend keeps one row
per limit and key, decides with ``decide`` on what it read, and writes the new TAT only
when the request fits; a row whose TAT has passed equals no row.

What that promises (a token bucket, Boulder's README "Rate Limit Structure"): at most
``count`` at once, then one per interval; in any window of length W at most
``count + W / interval``. A sliding window of one period may so see up to ``2 * count
- 1`` (the burst, then the refill); the long-run rate never exceeds ``count`` per period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """What a request against a limit gets: ``allowed``; the TAT to store (unchanged when
    refused); when to retry (``retry_at``, now when allowed); and when the bucket is full
    again (``resets_at``)."""

    allowed: bool
    tat: datetime
    retry_at: datetime
    resets_at: datetime


@dataclass(frozen=True, slots=True)
class Spend:
    """A spend a store write carries (``create_order``, ``start_issuance``): ``cost``
    from the bucket ``(name, key)`` of a ``count``/``period`` limit, decided inside the
    write's transaction, so that the spend and what it pays for are written together
    or not at all."""

    name: str
    key: str
    count: int
    period: timedelta
    cost: int = 1


@dataclass(frozen=True, slots=True)
class PendingAuthorizations:
    """An account's authorizations pending now (a limit on how many at once, not a
    rate): how many, and when the first of them expires, freeing its place at the
    latest (None when there is none)."""

    count: int
    first_expires: datetime | None


def interval(count: int, period: timedelta) -> timedelta:
    """How often one is given back: ``period // count``, at least a microsecond
    (``ValueError`` for a count below 1 or a period shorter than ``count`` microseconds)."""
    if count < 1:
        raise ValueError(f"a limit's count must be at least 1, not {count}")
    step = period // count
    if step <= timedelta(0):
        raise ValueError(f"a limit of {count} per {period} refills faster than one a microsecond")
    return step


def decide(tat: datetime | None, now: datetime, *, count: int, period: timedelta,
           cost: int = 1) -> LimitDecision:
    """GCRA on the stored ``tat`` (None: no row, a full bucket). ``cost`` 0 asks whether
    one more would fit without spending. ``ValueError`` for a count below 1, a cost below
    0 or above ``count`` (it could never fit), or a naive ``now``."""
    step = _checked(count, period, cost, now)
    base = now if tat is None or tat < now else tat
    wanted = base + step * max(cost, 1)
    if wanted - now <= step * count:
        kept = wanted if cost else base
        return LimitDecision(True, kept, now, kept)
    return LimitDecision(False, base, wanted - step * count, base)


def refund(tat: datetime | None, now: datetime, *, count: int, period: timedelta,
           cost: int = 1) -> datetime | None:
    """The TAT after giving back ``cost`` a spend took: ``cost`` intervals earlier, never
    before ``now``; None when there is nothing to give back (the bucket is full)."""
    step = _checked(count, period, cost, now)
    if tat is None or tat <= now:
        return None
    return max(tat - step * cost, now)


def _checked(count: int, period: timedelta, cost: int, now: datetime) -> timedelta:
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: limits need timezone-aware UTC")
    step = interval(count, period)
    if not 0 <= cost <= count:
        raise ValueError(f"a cost must be from 0 to the limit's count {count}, not {cost}")
    return step
