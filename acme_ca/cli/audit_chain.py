"""Verifying the audit log's hash chain a page at a time (`acme-ca audit verify`), from
the store or from a file `acme-ca audit export` wrote, and the JSON Lines form of an
entry that export writes and verify reads back.

``ChainWalk`` feeds each page to ``domain/audit.verify_chain`` after the last entry
that verified, so the whole log is never held in memory, and checks the head an
operator kept (``--expect-head SEQ:HASH``): a log whose newest entries were deleted
still verifies by itself, but no longer reaches that entry, or (when new entries were
appended since) has another hash there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from acme_ca.domain.audit import GENESIS, AuditEntry, ChainBreak, time_text, verify_chain
from acme_ca.errors import ConfigError

_HEAD = re.compile(r"(\d{1,18}):([0-9a-f]{64})", re.ASCII)
MAX_LINE = 1 << 20  # characters: an exported entry is a few hundred; a longer line is not one


@dataclass(frozen=True, slots=True)
class Head:
    """An entry's place in the chain: its seq and hash (0 and GENESIS: before any)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def parse_head(text: str) -> Head:
    """``--expect-head SEQ:HASH``, as `audit verify` prints the head."""
    found = _HEAD.fullmatch(text.strip().lower())
    if found is None:
        raise ConfigError(f"--expect-head: {text!r} is not SEQ:HASH (a number, a colon and "
                          "the 64 hex digits `audit verify` prints)")
    return Head(int(found.group(1)), found.group(2))


class ChainWalk:
    """Pages of entries in ``seq`` order, verified as they come (``feed``), then the
    verdict (``finish``): the head reached, and the first break if there is one."""

    def __init__(self, expected: Head | None = None) -> None:
        self.head = Head(0, GENESIS)
        self.broken: ChainBreak | None = None
        self._expected = expected

    @property
    def entries(self) -> int:
        """How many entries verified: seq runs 1, 2, 3 ... so the head's seq."""
        return self.head.seq

    def feed(self, page: Sequence[AuditEntry]) -> bool:
        """Verify ``page``, which follows the entries fed before; False once broken. The
        head kept is checked by ``verify_chain`` on the page that reaches it."""
        if self.broken is not None or not page:
            return self.broken is None
        expected = self._expected
        reaches = expected is not None and page[-1].seq >= expected.seq > self.head.seq
        last, self.broken = verify_chain(
            page, after_seq=self.head.seq, after_hash=self.head.hash,
            expected_head=(expected.seq, expected.hash) if reaches and expected else None)
        if last is not None:
            self.head = Head(last.seq, last.hash)
        return self.broken is None

    def finish(self) -> ChainBreak | None:
        """The first break; a log that ends before the head kept is broken there."""
        expected = self._expected
        if self.broken is None and expected is not None:
            self.broken = verify_chain([], after_seq=self.head.seq, after_hash=self.head.hash,
                                       expected_head=(expected.seq, expected.hash))[1]
        return self.broken


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """One entry, every field the hash covers and the hash (`audit export`, `--json`)."""
    return {"seq": entry.seq, "at": time_text(entry.at), "action": entry.action,
            "actor": entry.actor, "client_ip": entry.client_ip,
            "identifiers": list(entry.identifiers), "serial": entry.serial,
            "details": dict(entry.details), "prev_hash": entry.prev_hash,
            "hash": entry.hash}


def entry_from_json(line: str) -> AuditEntry:
    """``entry_json`` read back (ValueError, KeyError or TypeError when it is not)."""
    fields = json.loads(line)
    if not isinstance(fields, dict):
        raise TypeError("not a JSON object")
    at = datetime.fromisoformat(_text(fields, "at").replace("Z", "+00:00"))
    identifiers = fields["identifiers"]
    details = fields["details"]
    if not isinstance(identifiers, list) or not isinstance(details, dict):
        raise TypeError("identifiers must be a list, details an object")
    if not isinstance(fields["seq"], int) or isinstance(fields["seq"], bool):
        raise TypeError("seq must be a number")
    return AuditEntry(seq=fields["seq"], at=at, action=_text(fields, "action"),
                      actor=_text(fields, "actor"), client_ip=fields["client_ip"],
                      identifiers=tuple(identifiers), serial=fields["serial"],
                      details=details, prev_hash=_text(fields, "prev_hash"),
                      hash=_text(fields, "hash"))


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def file_pages(path: Path, size: int) -> Iterator[list[AuditEntry]]:
    """The entries of an export, ``size`` at a time; ``ConfigError`` naming the line
    that is not an entry."""
    try:
        with path.open(encoding="utf-8") as lines:
            page: list[AuditEntry] = []
            for number, line in enumerate(iter(lambda: lines.readline(MAX_LINE + 1), ""),
                                          start=1):
                if len(line) > MAX_LINE:
                    raise ConfigError(f"{path}: line {number} is longer than {MAX_LINE} "
                                      "characters: not an audit entry")
                if not line.strip():
                    continue
                try:
                    page.append(entry_from_json(line))
                except (ValueError, KeyError, TypeError, RecursionError) as exc:
                    raise ConfigError(f"{path}: line {number} is not an audit entry "
                                      f"({type(exc).__name__}: {exc})") from None
                if len(page) == size:
                    yield page
                    page = []
            if page:
                yield page
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text (an `audit export` file?)") from None
