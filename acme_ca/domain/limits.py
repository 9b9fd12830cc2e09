"""Rate limits as GCRA (the generic cell rate algorithm), as Boulder's ratelimits keep them.

A limit of ``count`` per ``period`` is a bucket of ``count`` that refills one every
``period / count``. Its whole state is one instant, the theoretical arrival time
(TAT): the bucket is full when the TAT is now or past, and a request costing ``cost``
fits when ``max(tat, now) + cost * interval - now <= period``. So a backend keeps one
row per limit and key, decides with ``decide`` on what it read, and writes the new TAT
only when the request fits; a row whose TAT has passed equals no row.
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


def decide(tat: datetime | None, now: datetime, *, count: int, period: timedelta,
           cost: int = 1) -> LimitDecision:
    """GCRA on the stored ``tat`` (None: no row, a full bucket). ``cost`` 0 asks whether
    one more would fit without spending. ``ValueError`` for a count below 1 or a
    negative cost."""
    raise NotImplementedError  # issue 11, rate limits: to be written, tests first
