"""`acme-ca db migrate | stats`: the CA's database ([storage] url) as its operator
upgrades and watches it.

`db migrate` brings the database to this acme-ca's schema on purpose, before the new
version serves it (``store/upgrade.py``), with a bar over the migrations on a terminal
(``progress``); it says "already at version N" when there is nothing to do.

`db stats [--json]`: the rows and the size of every table, so that an operator sees
what retention keeps bounded (``authority/retention.py``) and what it does not
(certificates are kept for good).

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

from rich import box
from rich.table import Table

from acme_ca.cli.certs_view import emit
from acme_ca.cli.progress import progress
from acme_ca.config import Config
from acme_ca.errors import ConfigError
from acme_ca.store import is_postgres, read_table_stats, sqlite_file
from acme_ca.store.migrations import Migration
from acme_ca.store.retention import TableStats
from acme_ca.store.sqlite.opening import nonce_path
from acme_ca.store.upgrade import migrate_database


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="database tools: migrate, stats",
                             description="Database tools.")
    tools = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    migrate = tools.add_parser(
        "migrate", help="bring the database to this acme-ca's schema",
        description="Apply the schema migrations this acme-ca has and the database "
        "[storage] url names lacks (SQLite or PostgreSQL), each in one transaction; "
        "`serve` does it too when it opens the database, this does it before. A "
        "database newer than this acme-ca is refused.")
    migrate.set_defaults(run=run_db_migrate)
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


def run_db_migrate(config: Config, args: argparse.Namespace) -> int:
    with progress("Migrating the database", None) as bar:

        def started(version: int, latest: int) -> None:
            bar.set_total(latest - version)

        def applied(migration: Migration) -> None:
            bar.describe(f"Applied {migration.version:04d}_{migration.name}")
            bar.advance()

        migrated = asyncio.run(migrate_database(config.storage.url, started=started,
                                                applied=applied))
    if migrated.before == migrated.after:
        print(f"The database is already at version {migrated.after}: nothing to do.")
    else:
        print(f"Migrated the database from version {migrated.before} to "
              f"{migrated.after}.")
    return 0


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
        render(tables, files)
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


def render(tables: list[TableStats], files: dict[Path, int] | None) -> None:
    """The human table: one row per table and a total (rich), then (SQLite) the
    files."""
    known = [t.bytes for t in tables if t.bytes is not None]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, show_footer=True)
    table.add_column("table", footer="total")
    table.add_column("rows", justify="right", footer=f"{sum(t.rows for t in tables):,}")
    table.add_column("size", justify="right",
                     footer=size_text(sum(known)) if len(known) == len(tables) else "?")
    for each in tables:
        table.add_row(each.name, f"{each.rows:,}",
                      "?" if each.bytes is None else size_text(each.bytes))
    emit(table)
    if len(known) < len(tables):
        print("Sizes by table are unknown: this SQLite has no dbstat virtual table.")
    if files is not None:
        print("Files: " + ", ".join(f"{path} {size_text(size)}" for path, size in files.items()))


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
