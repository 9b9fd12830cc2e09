"""The dashboard's issuance chart, drawn on the server: the geometry of an SVG bar chart
of certificates signed per hour (``templates/chart.html`` writes the SVG).

Only coordinates and text leave here; the template escapes the text and styles the
shapes with classes of the stylesheet (the Content-Security-Policy allows no inline
style), so the chart needs no script and no build step.
"""

from __future__ import annotations

from dataclasses import dataclass

from acme_ca.authority.dashboard import HourCount

WIDTH, HEIGHT = 720, 200  # the viewBox; the stylesheet scales it to the card
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 12, 28  # margins: the count axis, the hour labels
LABEL_EVERY = 3  # an hour label under every third bar, the current hour's included


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    title: str  # "2026-12-06 14:00-15:00 UTC: 3 certificates" (the hover tooltip)
    label: str | None  # "14:00" under the bar, or None


@dataclass(frozen=True, slots=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    left: int
    right: int  # x of the plot's right edge
    baseline: float  # y of the zero line
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    total: int
    summary: str  # what the chart says, for screen readers and the figure's caption


def nice_top(peak: int) -> int:
    """The top of the count axis: the peak rounded up to 1, 2 or 5 times a power of
    ten (at least 1), so the ticks fall on round numbers."""
    top = 1
    while top < peak:
        top = _next_round(top)
    return top


def tick_step(top: int) -> int:
    """Between the count axis's ticks: a half of a top of 1 or 2 times a power of ten
    (0 10 20), a fifth of 5 times one (0 1 2 3 4 5); 1 for a top of 1."""
    lead = int(str(top)[0])
    return max(1, top // 2 if lead in (1, 2) else top // 5)


def _next_round(value: int) -> int:
    digits = len(str(value)) - 1
    lead = value // 10**digits
    return (2 if lead == 1 else 5 if lead == 2 else 10) * 10**digits


def issuance_chart(hours: tuple[HourCount, ...]) -> Chart:
    peak = max((h.count for h in hours), default=0)
    top = nice_top(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(hours), 1)
    baseline = TOP + plot_h
    bars = []
    for index, hour in enumerate(hours):
        height = plot_h * hour.count / top
        end = (hour.start.hour + 1) % 24
        plural = "" if hour.count == 1 else "s"
        bars.append(Bar(
            x=round(LEFT + index * slot + slot * 0.15, 2), y=round(baseline - height, 2),
            width=round(slot * 0.7, 2), height=round(height, 2), count=hour.count,
            title=f"{hour.start:%Y-%m-%d %H:00}-{end:02d}:00 UTC: "
                  f"{hour.count} certificate{plural}",
            label=f"{hour.start:%H:00}" if (len(hours) - 1 - index) % LABEL_EVERY == 0
            else None))
    ticks = tuple(Tick(round(baseline - plot_h * value / top, 2), str(value))
                  for value in range(0, top + 1, tick_step(top)))
    total = sum(h.count for h in hours)
    summary = (f"{total} certificate{'' if total == 1 else 's'} signed in the last "
               f"{len(hours)} hours, at most {peak} in one hour")
    return Chart(WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, baseline, tuple(bars), ticks, total,
                 summary)
