"""`acme-ca db stats [--json]` (issue 11, item 4): the rows and size of every table, on
SQLite and PostgreSQL; errors one line. It only reads: a missing database is never
created, an empty file never given a schema, and a database at another schema version
than this acme-ca's (an older one may still serve it) is refused, never migrated."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from acme_ca.cli.db import render, size_text
from acme_ca.store import open_store
from acme_ca.store.migrations import load_migrations
from acme_ca.store.retention import TableStats
from tests.cli.conftest import Run, assert_one_line_error
from tests.store.conftest import make_authorization, make_order, with_accounts
from tests.store.pg import pg_url

__all__ = ["pg_url"]  # the fixture


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "acme-ca.toml"
    path.write_text(f'[storage]\nurl = "{url}"\n')
    return path


async def seed(url: str) -> None:
    """Two accounts, an order with two authorizations (and a challenge each)."""
    store = await with_accounts(await open_store(url))
    try:
        authzs = [make_authorization(f"az-{n}", f"n{n}.example.test") for n in range(2)]
        await store.create_order(make_order("order-1", authzs), authzs)
    finally:
        await store.close()


def check_counts(tables: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    by_name = {t["name"]: t for t in tables}
    assert [t["name"] for t in tables] == sorted(by_name)
    assert {name: by_name[name]["rows"] for name in
            ("accounts", "orders", "authorizations", "challenges", "order_authorizations",
             "certificates")} == {"accounts": 2, "orders": 1, "authorizations": 2,
                                  "challenges": 2, "order_authorizations": 2,
                                  "certificates": 0}
    return by_name  # type: ignore[return-value]


def test_sqlite_tables_and_files(run: Run, tmp_path: Path):
    database = tmp_path / "ca.db"
    asyncio.run(seed(f"sqlite:///{database}"))
    path = config(tmp_path, f"sqlite:///{database}")

    code, out, err = run("--config", path, "db", "stats", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["backend"] == "sqlite"
    by_name = check_counts(stats["tables"])
    assert isinstance(by_name["orders"]["bytes"], int) and by_name["orders"]["bytes"] > 0
    files = {Path(f["path"]).name: f["bytes"] for f in stats["files"]}
    assert files["ca.db"] == database.stat().st_size and "ca-nonces.db" in files

    code, out, err = run("--config", path, "db", "stats")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["table", "rows", "size"]
    orders = next(line.split() for line in lines if line.startswith("orders "))
    assert orders[1] == "1" and orders[3] in ("KiB", "MiB")
    assert lines[-2].startswith("total ") and lines[-1].startswith("Files: ")


def test_postgresql_tables_and_sizes(run: Run, tmp_path: Path, pg_url: str):
    asyncio.run(seed(pg_url))
    code, out, err = run("--config", config(tmp_path, pg_url), "db", "stats", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["backend"] == "postgresql" and stats["files"] == []
    by_name = check_counts(stats["tables"])
    assert all(isinstance(t["bytes"], int) for t in by_name.values())
    assert by_name["orders"]["bytes"] > 0

    code, out, err = run("--config", config(tmp_path, pg_url), "db", "stats")
    assert code == 0, err
    assert "Files:" not in out and "unknown" not in out
    assert out.splitlines()[-1].startswith("total ")  # the table's footer


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(run: Run, tmp_path: Path):
    database = tmp_path / "nowhere" / "ca.db"
    code, _, err = run("--config", config(tmp_path, f"sqlite:///{database}"), "db", "stats")
    assert_one_line_error(code, err, f"no database at {database}")
    assert not database.parent.exists()


def test_an_in_memory_database_is_an_error(run: Run, tmp_path: Path):
    code, _, err = run("--config", config(tmp_path, "sqlite:///:memory:"), "db", "stats")
    assert_one_line_error(code, err, "names no database file")


def test_a_postgresql_server_out_of_reach_is_one_line(run: Run, tmp_path: Path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/acme"
    code, _, err = run("--config", config(tmp_path, url), "db", "stats")
    assert_one_line_error(code, err, f"127.0.0.1:{port}")


def test_sizes_unknown_are_said_so_with_the_files(capsys: pytest.CaptureFixture[str]):
    """A SQLite built without dbstat: the rows, a question mark for each size, and the
    files' sizes; a rich table (issue 13, item 5), whole lines off a terminal."""
    render([TableStats("accounts", 2, None), TableStats("orders", 1234, None)],
           {Path("/var/lib/acme-ca/ca.db"): 3 * 1024 * 1024})
    assert [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()
            if line.strip() and not line.startswith("\u2500")] == [
        "table rows size",
        "accounts 2 ?",
        "orders 1,234 ?",
        "total 1,236 ?",
        "Sizes by table are unknown: this SQLite has no dbstat virtual table.",
        "Files: /var/lib/acme-ca/ca.db 3.0 MiB",
    ]


def test_sizes_read_in_binary_units():
    assert [size_text(n) for n in (0, 1023, 1024, 10 * 1024, 5 * 1024 ** 3, 3 * 1024 ** 5)
            ] == ["0 B", "1023 B", "1.0 KiB", "10 KiB", "5.0 GiB", "3072 TiB"]


LATEST = len(load_migrations("sqlite"))
# What the newest migration creates: gone from a database the release before left.
NEWEST_INDEXES = ("orders_by_expiry", "authorizations_by_expiry", "authorizations_pending")


def files_of(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Each database file's content and mtime; not the -wal and -shm, which a reader of
    a WAL database opens (creates) when no other process has them open."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()
            if not p.name.endswith(("-wal", "-shm"))}


def test_sqlite_is_only_read(run: Run, tmp_path: Path):
    """No byte of the database changes (its write-ahead log, if the read made one, stays
    empty), and a missing nonce file is not created: its tables are not counted."""
    database = tmp_path / "db" / "ca.db"
    asyncio.run(seed(f"sqlite:///{database}"))
    (database.parent / "ca-nonces.db").unlink()
    before = files_of(database.parent)
    code, out, err = run("--config", config(tmp_path, f"sqlite:///{database}"), "db", "stats",
                         "--json")
    assert code == 0, err
    assert files_of(database.parent) == before
    wal = database.parent / "ca.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    names = {t["name"] for t in json.loads(out)["tables"]}
    assert "orders" in names and "nonces" not in names


def test_an_older_sqlite_database_is_refused_and_not_migrated(run: Run, tmp_path: Path):
    database = tmp_path / "ca.db"
    asyncio.run(seed(f"sqlite:///{database}"))
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        for index in NEWEST_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {index}")
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", (LATEST,))
    code, _, err = run("--config", config(tmp_path, f"sqlite:///{database}"), "db", "stats")
    assert_one_line_error(code, err, f"schema is at version {LATEST - 1}, not {LATEST}")
    with contextlib.closing(sqlite3.connect(database)) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] \
            == LATEST - 1


def test_an_empty_sqlite_file_is_refused_and_left_empty(run: Run, tmp_path: Path):
    """A mistyped url naming some empty file: not given the CA's schema."""
    empty = tmp_path / "typo.db"
    empty.touch()
    code, _, err = run("--config", config(tmp_path, f"sqlite:///{empty}"), "db", "stats")
    assert_one_line_error(code, err, f"{empty} holds no acme-ca database")
    assert empty.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == [
        "acme-ca.toml", "typo.db"]


def test_a_file_that_is_no_database_is_one_line(run: Run, tmp_path: Path):
    other = tmp_path / "notes.txt"
    other.write_text("not a database, but long enough to have a header page\n" * 20)
    code, _, err = run("--config", config(tmp_path, f"sqlite:///{other}"), "db", "stats")
    assert_one_line_error(code, err, str(other))


async def drop_newest_migration(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for index in NEWEST_INDEXES:
            await conn.execute(f"DROP INDEX IF EXISTS {index}")
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", LATEST)
    finally:
        await conn.close()


async def tables_and_version(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = "
                                     "current_schema()")
        version = await conn.fetchval("SELECT MAX(version) FROM schema_migrations") \
            if tables else 0
        return tables, version
    finally:
        await conn.close()


def test_an_older_postgresql_database_is_refused_and_not_migrated(
        run: Run, tmp_path: Path, pg_url: str):
    asyncio.run(seed(pg_url))
    asyncio.run(drop_newest_migration(pg_url))
    tables, _ = asyncio.run(tables_and_version(pg_url))
    code, _, err = run("--config", config(tmp_path, pg_url), "db", "stats")
    assert_one_line_error(code, err, f"schema is at version {LATEST - 1}, not {LATEST}")
    assert asyncio.run(tables_and_version(pg_url)) == (tables, LATEST - 1)


def test_an_empty_postgresql_database_is_refused_and_left_empty(
        run: Run, tmp_path: Path, pg_url: str):
    code, _, err = run("--config", config(tmp_path, pg_url), "db", "stats")
    assert_one_line_error(code, err, "holds no acme-ca database")
    assert asyncio.run(tables_and_version(pg_url)) == (0, 0)
