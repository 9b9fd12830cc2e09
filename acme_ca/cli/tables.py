"""The listings of `acme-ca accounts`, `orders` and `audit`: a rich table for people,
JSON for scripts (``--json``), with `certs list`'s rules (``certs_view``): every cell
printable, never markup; off a terminal, plain lines never wrapped; the columns named
in ``whole`` (ids a reader pastes back into a command) never cut."""

from __future__ import annotations

import argparse
import enum
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from rich import box
from rich.table import Table
from rich.text import Text

from acme_ca.cli.certs_view import emit, printable
from acme_ca.errors import ConfigError

Row = TypeVar("Row")
Status = TypeVar("Status", bound=enum.Enum)


def listing_options(parser: argparse.ArgumentParser, noun: str,
                    statuses: Iterable[str] | None = None) -> None:
    """--status S (when the rows have one), --limit N and --json, for a list of
    ``noun``."""
    if statuses is not None:
        parser.add_argument("--status", default=None, metavar="S",
                            help=f"only {noun} in this status: " + ", ".join(statuses))
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help=f"at most N {noun} (default: all)")
    parser.add_argument("--json", action="store_true", help="a JSON array")


def print_rows(columns: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str,
               whole: Sequence[str] = ()) -> None:
    """One table of ``rows`` under ``columns``, or the line ``empty`` when there are
    none."""
    cells = [[printable(cell) for cell in row] for row in rows]
    if not cells:
        sys.stdout.write(empty + "\n")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for index, column in enumerate(columns):
        if column in whole:
            table.add_column(column, no_wrap=True,
                             min_width=max(len(column), *(len(r[index]) for r in cells)))
        else:
            table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    emit(table)


def print_listing(items: Sequence[Row], *, as_json: bool, to_json: Callable[[Row], Any],
                  columns: Sequence[str], to_row: Callable[[Row], Sequence[str]],
                  empty: str, whole: Sequence[str] = ()) -> None:
    """``items`` as a JSON array of ``to_json`` (``--json``), else as the table of their
    ``to_row`` (``print_rows``)."""
    if as_json:
        print_json([to_json(item) for item in items])
    else:
        print_rows(columns, (to_row(item) for item in items), empty=empty, whole=whole)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def check_limit(limit: int | None) -> None:
    """``--limit``: a positive number, or None for all."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit: {limit} is not a positive number")


def choice(flag: str, text: str | None, values: Iterable[str]) -> str | None:
    """``text`` if it is one of ``values`` (a status); a one-line error otherwise."""
    allowed = list(values)
    if text is not None and text not in allowed:
        raise ConfigError(f"{flag}: {printable(text)!r} is not one of {', '.join(allowed)}")
    return text


def status(text: str | None, statuses: type[Status]) -> Status | None:
    """``--status``: the one of ``statuses`` whose value ``text`` is, or None for all; a
    one-line error for any other text."""
    chosen = choice("--status", text, (s.value for s in statuses))
    return None if chosen is None else statuses(chosen)
