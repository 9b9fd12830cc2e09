"""`acme-ca audit verify | list | export`: the audit log in the store (issue 13 item 4),
as an operator checks, reads and archives it.

`verify` walks the whole hash chain a page at a time (``audit_chain``). Its exit
status: 0 the chain is intact; 3 it is broken (one line names the first bad entry);
1, as every command, when the log cannot be read at all (a one-line error). With
`--expect-head SEQ:HASH`, a head printed by an earlier run and kept where the
database's writers cannot reach, it also finds deleted newest entries. With `--file`
it verifies an export offline, without the database.

`export` writes every entry as JSON Lines with its hashes (0600, never over an
existing file), which `verify --file` checks on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from acme_ca.cli import tables
from acme_ca.cli.audit_chain import ChainWalk, entry_json, file_pages, parse_head
from acme_ca.cli.certs_args import parse_moment
from acme_ca.cli.certs_view import when
from acme_ca.cli.store_session import with_store
from acme_ca.clock import SystemClock
from acme_ca.config import Config, parse_duration
from acme_ca.domain.audit import AuditAction, AuditEntry, details_text
from acme_ca.errors import ConfigError
from acme_ca.store.base import Store

PAGE = 1000  # entries read per query
CHAIN_BROKEN = 3  # `audit verify`'s exit status when the chain does not verify
COLUMNS = ("SEQ", "TIME", "ACTION", "ACTOR", "CLIENT IP", "SUBJECT", "DETAILS")


def add_parser(commands: Any) -> None:
    group = commands.add_parser(
        "audit", help="the audit log: verify, list, export",
        description="The tamper-evident audit log: who did what, when, from where.")
    tools = group.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = tools.add_parser(
        "verify", help="check the hash chain of the whole log",
        description="Check every entry's hash and its link to the one before. Exit "
        f"status 0: intact; {CHAIN_BROKEN}: broken (the first bad entry is named); 1: the "
        "log could not be read.")
    verify.add_argument("--expect-head", default=None, metavar="SEQ:HASH",
                        help="the head an earlier run printed: also catch deleted newest "
                        "entries")
    verify.add_argument("--file", type=Path, default=None, metavar="FILE",
                        help="verify an `audit export` file instead of the database")
    verify.add_argument("--json", action="store_true", help="one JSON object")
    verify.set_defaults(run=run_verify)
    listing = tools.add_parser("list", help="list entries, oldest first",
                               description="List audit entries, oldest first.")
    listing.add_argument("--since", default=None, metavar="WHEN",
                         help="only entries since a duration ago (24h, 7d) or an RFC 3339 "
                         "date or date-time")
    listing.add_argument("--action", default=None, metavar="A",
                         help="only this action: " + ", ".join(AuditAction))
    tables.listing_options(listing, "entries")
    listing.set_defaults(run=run_list)
    export = tools.add_parser(
        "export", help="write every entry as JSON Lines, with its hashes",
        description="Write the whole log as JSON Lines (one entry a line, with its "
        "hashes) for archiving; `audit verify --file FILE` verifies it offline.")
    export.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="the file to write (0600; an existing one is refused); "
                        "default: standard output")
    export.set_defaults(run=run_export)


async def entries(store: Store, *, since: datetime | None = None
                  ) -> AsyncIterator[list[AuditEntry]]:
    """The log (since ``since``), a page at a time in ``seq`` order."""
    after = 0
    while True:
        page = await store.audit_entries(after_seq=after, since=since, limit=PAGE)
        if page:
            yield page
        if len(page) < PAGE:
            return
        after = page[-1].seq


def run_verify(config: Config, args: argparse.Namespace) -> int:
    walk = ChainWalk(None if args.expect_head is None else parse_head(args.expect_head))
    if args.file is not None:
        for page in file_pages(args.file, PAGE):
            if not walk.feed(page):
                break
    else:
        async def read(store: Store) -> None:
            async for page in entries(store):
                if not walk.feed(page):
                    return

        with_store(config, read)
    broken = walk.finish()
    if args.json:
        tables.print_json({
            "intact": broken is None, "entries": walk.entries,
            "head": {"seq": walk.head.seq, "hash": walk.head.hash},
            "first_bad": None if broken is None else {"seq": broken.seq,
                                                      "reason": broken.reason}})
    elif broken is None:
        print(f"{entries_text(walk.entries)}, chain intact, head {walk.head.seq} "
              f"{walk.head.hash}")
    else:
        print(f"Chain broken at entry {broken.seq}: {broken.reason} "
              f"({entries_text(walk.entries)} before it verify)")
    return 0 if broken is None else CHAIN_BROKEN


def entries_text(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: a duration ago (24h) or an RFC 3339 date or date-time."""
    try:
        return now - parse_duration(text)
    except (ValueError, OverflowError):
        pass
    try:
        return parse_moment(text, "--since")
    except ConfigError:
        raise ConfigError(f"--since: {text!r} is neither a duration (24h, 7d) nor an RFC "
                          "3339 date or date-time (2026-12-01, 2026-12-01T12:00:00Z)"
                          ) from None


def run_list(config: Config, args: argparse.Namespace) -> int:
    tables.check_limit(args.limit)
    action = tables.choice("--action", args.action, AuditAction)
    since = None if args.since is None else parse_since(args.since, SystemClock().now())

    async def read(store: Store) -> list[AuditEntry]:
        found: list[AuditEntry] = []
        async for page in entries(store, since=since):
            found.extend(e for e in page if action is None or e.action == action)
            if args.limit is not None and len(found) >= args.limit:
                break
        return found[:args.limit]

    found = with_store(config, read)
    tables.print_listing(
        found, as_json=args.json, to_json=entry_json, columns=COLUMNS,
        to_row=lambda e: [str(e.seq), when(e.at), e.action, e.actor, e.client_ip or "-",
                          subject(e), details_text(e.details) if e.details else "-"],
        empty="No audit entries.", whole=("SEQ", "ACTION"))
    return 0


def subject(entry: AuditEntry) -> str:
    """What the entry is about: its serial and identifiers."""
    about = ([f"serial {entry.serial}"] if entry.serial else []) + list(entry.identifiers)
    return ", ".join(about) or "-"


def run_export(config: Config, args: argparse.Namespace) -> int:
    async def write(store: Store, out: TextIO) -> int:
        count = 0
        async for page in entries(store):
            for entry in page:
                out.write(json.dumps(entry_json(entry), sort_keys=True,
                                     separators=(",", ":")) + "\n")
            count += len(page)
        return count

    if args.out is None:
        with_store(config, lambda store: write(store, sys.stdout))
        return 0
    try:
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{args.out} exists; refusing to overwrite it") from None
    except OSError as exc:
        raise ConfigError(f"{args.out}: {exc.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            count = with_store(config, lambda store: write(store, out))
    except BaseException:
        args.out.unlink(missing_ok=True)  # no half export left to be taken for a whole
        raise
    print(f"Exported {entries_text(count)} to {args.out}; `acme-ca audit verify --file "
          f"{args.out}` checks it.")
    return 0
