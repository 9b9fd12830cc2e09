"""`acme-ca db stats [--json]`: the rows and the size of every table of the CA's
database ([storage] url), so that an operator sees what retention keeps bounded
(``authority/retention.py``) and what it does not (certificates are kept for good).

Sizes are a table's and its indexes' bytes: PostgreSQL's ``pg_total_relation_size``;
SQLite's ``dbstat`` virtual table when this SQLite was compiled with it, and else
unknown, said so. For SQLite the database files are listed too (the WAL and the nonce
file beside the main one), whose sizes are always known.

The command only reads (``store.read_table_stats``): it never creates, migrates or
writes a database. A SQLite file is opened read-only, its nonce file only if there is
one; a file that does not exist, an empty one (a mistyped url), and a database at
another schema version than this acme-ca's (an older acme-ca may still serve it) are
each a one-line error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from acme_ca.config import Config
from acme_ca.errors import ConfigError
from acme_ca.store import is_postgres, read_table_stats, sqlite_file
from acme_ca.store.retention import TableStats
from acme_ca.store.sqlite.opening import nonce_path


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="database tools: stats (rows and size by table)",
                             description="Database tools.")
    tools = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    stats = tools.add_parser(
        "stats",
        help="print the rows and size of every table",
        description="Print the rows and the size (with its indexes) of every table of "
        "the database [storage] url names; for SQLite, the size of its files too. "
        "Expired orders and authorizations are deleted after [retention] grace; "
        "certificates are kept.",
    )
    stats.add_argument("--json", action="store_true",
                       help="one JSON object: backend, tables (name, rows, bytes or "
                       "null when unknown), files (SQLite: path, bytes)")
    stats.set_defaults(run=run_db_stats)


def run_db_stats(config: Config, args: argparse.Namespace) -> int:
    url = config.storage.url
    files = database_files(url)
    tables = asyncio.run(read_table_stats(url))
    backend = "postgresql" if files is None else "sqlite"
    if args.json:
        sys.stdout.write(json.dumps({
            "backend": backend,
            "tables": [{"name": t.name, "rows": t.rows, "bytes": t.bytes} for t in tables],
            "files": [{"path": str(path), "bytes": size}
                      for path, size in (files or {}).items()],
        }, indent=2) + "\n")
    else:
        sys.stdout.write(render(tables, files))
    return 0


def database_files(url: str) -> dict[Path, int] | None:
    """A SQLite database's files that exist, with their sizes; None for PostgreSQL.
    ``ConfigError`` for an in-memory database or a file that does not exist."""
    if is_postgres(url):
        return None
    path = sqlite_file(url)
    if path is None:
        raise ConfigError("storage.url names no database file (an in-memory database is "
                          "gone with its process): there is nothing to count")
    if not path.is_file():
        raise ConfigError(f"no database at {path} ([storage] url): has the CA run yet?")
    nonces = Path(nonce_path(str(path)))
    candidates = [path, Path(f"{path}-wal"), nonces, Path(f"{nonces}-wal")]
    return {each: each.stat().st_size for each in candidates if each.is_file()}


def render(tables: list[TableStats], files: dict[Path, int] | None) -> str:
    """The human table: one line per table, a total, then (SQLite) the files."""
    width = max([len("table"), *(len(t.name) for t in tables)])
    lines = [f"{'table':<{width}}  {'rows':>12}  {'size':>10}"]
    for table in tables:
        size = "?" if table.bytes is None else size_text(table.bytes)
        lines.append(f"{table.name:<{width}}  {table.rows:>12,}  {size:>10}")
    known = [t.bytes for t in tables if t.bytes is not None]
    total = size_text(sum(known)) if len(known) == len(tables) else "?"
    lines.append(f"{'total':<{width}}  {sum(t.rows for t in tables):>12,}  {total:>10}")
    if len(known) < len(tables):
        lines.append("Sizes by table are unknown: this SQLite has no dbstat virtual table.")
    if files is not None:
        lines.append("Files: " + ", ".join(f"{path} {size_text(size)}"
                                           for path, size in files.items()))
    return "\n".join(lines) + "\n"


def size_text(size: int) -> str:
    """Bytes in B, KiB, MiB, GiB or TiB: 512 B, 4.0 KiB, 120 MiB."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
