"""Progress bars for the command line's long work (key generation, migrations, bulk
revocation, `bench seed`): rich.progress on standard error, and only when standard
error is a terminal. Anywhere else (a pipe, a file, a journal, a test) nothing at all
is drawn, so what a command prints, and its --json on standard output, is the same
with or without a terminal; a command that prints JSON asks for no bar (``shown``).

A bar with a ``total`` counts steps (3/10 migrations); with None it only pulses, for
work that cannot say how far it is (an RSA key being generated). The bar is transient:
it is erased when the work ends, leaving only what the command prints.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class Bar:
    """One task on a bar: ``advance`` it, or change what it says it is doing."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, steps)

    def set_total(self, steps: int) -> None:
        """How many steps there are, once known (a pulsing bar starts counting)."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=steps)

    def describe(self, text: str) -> None:
        """Say what the work does now, drawn at once: a step shorter than the bar's
        refresh period (a tenth of a second) is still seen."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=text, refresh=True)


def on_terminal() -> bool:
    """Whether standard error is a terminal (a bar would be seen, not recorded)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without one, or closed
        return False


@contextmanager
def progress(description: str, total: int | None, *, shown: bool = True) -> Iterator[Bar]:
    """A bar for ``total`` steps (None: pulsing) while the block runs, on standard error
    when it is a terminal and ``shown``; otherwise a ``Bar`` that draws nothing."""
    if not (shown and on_terminal()):
        yield Bar(None, None)
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn()]
    console = Console(file=sys.stderr, highlight=False)
    with Progress(*columns, console=console, transient=True) as drawn:
        task = drawn.add_task(description, total=total)
        drawn.refresh()  # drawn at once, not at the bar's next tick
        yield Bar(drawn, task)
