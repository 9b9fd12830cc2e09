"""Time, injected: the only module that reads the system clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never jump, whatever the wall clock does:
        to tell the time that passed from a step of the wall clock."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock for tests: it stands still until told to move."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._ticks = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._ticks

    def advance(self, delta: timedelta) -> None:
        """Time passes: both clocks move."""
        self._now += delta
        self._ticks += delta.total_seconds()

    def set_wall(self, moment: datetime) -> None:
        """The wall clock is set (an NTP step, an operator): no time passes."""
        self._now = moment
