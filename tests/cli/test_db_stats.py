"""`acme-ca db stats [--json]` (issue 11, item 4): the rows and size of every table, on
SQLite and PostgreSQL; errors one line, and a missing database is never created."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

from acme_ca.cli.db import render, size_text
from acme_ca.store import open_store
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
    assert out.splitlines()[-1].startswith("total ")


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


def test_sizes_unknown_are_said_so_with_the_files():
    """A SQLite built without dbstat: the rows, a question mark for each size, and the
    files' sizes."""
    text = render([TableStats("accounts", 2, None), TableStats("orders", 1234, None)],
                  {Path("/var/lib/acme-ca/ca.db"): 3 * 1024 * 1024})
    assert text.splitlines() == [
        "table             rows        size",
        "accounts             2           ?",
        "orders           1,234           ?",
        "total            1,236           ?",
        "Sizes by table are unknown: this SQLite has no dbstat virtual table.",
        "Files: /var/lib/acme-ca/ca.db 3.0 MiB",
    ]


def test_sizes_read_in_binary_units():
    assert [size_text(n) for n in (0, 1023, 1024, 10 * 1024, 5 * 1024 ** 3, 3 * 1024 ** 5)
            ] == ["0 B", "1023 B", "1.0 KiB", "10 KiB", "5.0 GiB", "3072 TiB"]
