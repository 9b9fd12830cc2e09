"""SQLite's versioned migrations: applied once, in order, even by processes opening a
fresh file at once; a file from a newer acme-ca or not a database is refused; WAL mode."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.clock import FakeClock
from acme_ca.domain.models import CertificateStatus
from acme_ca.errors import StoreError
from acme_ca.store import SqliteStore
from acme_ca.store.migrations import load_migrations
from acme_ca.store.sqlite.migrate import sqlite_statements
from acme_ca.store.sqlite.opening import nonce_path
from tests.store.conftest import (
    ACCOUNT,
    DER,
    T0,
    assert_0009_kept_and_works,
    make_account,
    make_record,
)

LATEST = len(load_migrations("sqlite"))  # the version a fresh database is at


def raw(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ca.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(db_path, clock=FakeClock(T0))
    yield opened
    await opened.close()


async def test_fresh_database_is_migrated_to_version_1(store: SqliteStore, db_path: Path):
    assert await store.schema_version() == LATEST
    with raw(db_path) as conn:
        rows = conn.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
        indexed = {
            row[0]
            for (index,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'certificates'"
            )
            for row in conn.execute("SELECT name FROM pragma_index_info(?)", (index,))
        }
    stamp = "2026-01-01T12:00:00.123456Z"
    assert rows == [(1, "certificates", stamp), (2, "acme", stamp), (3, "nonces_apart", stamp),
                    (4, "orders_processing", stamp), (5, "cluster", stamp),
                    (6, "expiry", stamp), (7, "who_gets_what", stamp),
                    (8, "retention", stamp), (9, "revocation", stamp),
                    (10, "operations", stamp)]
    assert {"status", "not_after", "account_id", "order_id", "created_at"} <= indexed


async def test_reopening_does_not_apply_again(store: SqliteStore, db_path: Path):
    await store.reserve_serial(make_record())
    again = await SqliteStore.open(db_path, clock=FakeClock(T0 + timedelta(days=1)))
    try:
        assert await again.schema_version() == LATEST
        assert (await again.get_certificate("1a2b3c")).status is CertificateStatus.RESERVED
    finally:
        await again.close()
    with raw(db_path) as conn:
        rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    assert rows == [(n, "2026-01-01T12:00:00.123456Z") for n in range(1, LATEST + 1)]


async def test_two_stores_opening_a_fresh_file_at_once_migrate_it_once(db_path: Path):
    results = await asyncio.gather(
        *(SqliteStore.open(db_path) for _ in range(4)), return_exceptions=True
    )
    stores = [result for result in results if isinstance(result, SqliteStore)]
    try:
        assert len(stores) == 4, results
        assert [await each.schema_version() for each in stores] == [LATEST] * 4
    finally:
        for each in stores:
            await each.close()
    with raw(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone() == (LATEST,)


OPEN_AND_CLOSE = """
import asyncio, sys
from acme_ca.store.sqlite import SqliteStore

async def main():
    store = await SqliteStore.open(sys.argv[1])
    print(await store.schema_version())
    await store.close()

asyncio.run(main())
"""


async def test_processes_opening_a_fresh_file_at_once_migrate_it_once(db_path: Path):
    root = Path(__file__).resolve().parents[2]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            OPEN_AND_CLOSE,
            str(db_path),
            cwd=root,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [await process.communicate() for process in processes]
    assert [(p.returncode, out) for p, (out, _) in zip(processes, outputs, strict=True)] == [
        (0, f"{LATEST}\n".encode())
    ] * 3, outputs
    with raw(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone() == (LATEST,)


async def test_a_database_from_the_future_is_refused(db_path: Path):
    await (await SqliteStore.open(db_path)).close()
    with raw(db_path) as conn, conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'future', '2030-01-01')",
                     (LATEST + 1,))
    with pytest.raises(StoreError, match=rf"version {LATEST + 1}.* up to {LATEST}\b"):
        await SqliteStore.open(db_path)


async def test_a_file_that_is_not_a_database_is_a_store_error(db_path: Path):
    db_path.write_bytes(b"certainly not SQLite " * 100)
    with pytest.raises(StoreError, match=r"ca\.db"):
        await SqliteStore.open(db_path)


def test_migrations_are_numbered_from_1_and_split_into_statements():
    migrations = load_migrations("sqlite")
    assert [(m.version, m.name) for m in migrations] == [(1, "certificates"), (2, "acme"),
                                                            (3, "nonces_apart"),
                                                            (4, "orders_processing"),
                                                            (5, "cluster"), (6, "expiry"),
                                                            (7, "who_gets_what"),
                                                            (8, "retention"),
                                                            (9, "revocation"),
                                                            (10, "operations")]
    statements = sqlite_statements(migrations[0].sql)
    assert statements[0].endswith(";") and "CREATE TABLE certificates" in statements[0]
    assert sum("CREATE INDEX" in each for each in statements) == 5


def test_statement_splitter_keeps_semicolons_in_comments_and_refuses_a_fragment():
    sql = "-- one; two\nCREATE TABLE a (x);\n\nCREATE TABLE b (\n  y -- why;\n);\n-- end\n"
    assert sqlite_statements(sql) == [
        "-- one; two\nCREATE TABLE a (x);",
        "CREATE TABLE b (\n  y -- why;\n);",
    ]
    with pytest.raises(StoreError, match="incomplete"):
        sqlite_statements("CREATE TABLE a (x);\nCREATE TABLE b (y)\n")


async def test_the_file_is_in_wal_mode(store: SqliteStore, db_path: Path):
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_fresh_database_is_at_version_6_with_the_acme_tables(
    acme_store: SqliteStore, db_file: Path
):
    assert await acme_store.schema_version() == LATEST
    assert [(m.version, m.name) for m in load_migrations("sqlite")][1] == (2, "acme")
    with raw(db_file) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"accounts", "orders", "authorizations", "challenges",
            "order_authorizations", "leases"} <= tables
    assert "nonces" not in tables  # 0003: in a file of their own
    with raw(Path(nonce_path(str(db_file)))) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "nonces" in tables


async def test_a_version_1_database_upgrades_to_6_keeping_its_certificates(db_file: Path):
    """A database made by the release with only 0001 gains the ACME tables on open."""
    with raw(db_file) as conn, conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        for statement in sqlite_statements(load_migrations("sqlite")[0].sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (1, 'certificates', 'then')")
        conn.execute(
            "INSERT INTO certificates (serial, issuer, names, profile, not_before, not_after, "
            "created_at, status, der, account_id, order_id) VALUES ('0a', 'ab', "
            "'[\"old.example.test\"]', 'server', ?, ?, ?, 'issued', ?, 'acct-old', 'order-old')",
            ("2025-01-01T00:00:00.000000Z", "2025-04-01T00:00:00.000000Z",
             "2025-01-01T00:00:00.000000Z", DER))
    store = await SqliteStore.open(db_file, clock=FakeClock(T0))
    try:
        assert await store.schema_version() == LATEST
        kept = await store.get_certificate("0a")
        assert (kept.names, kept.der, kept.order_id) == (("old.example.test",), DER, "order-old")
        assert (await store.create_account(make_account())).id == ACCOUNT
    finally:
        await store.close()
    with raw(db_file) as conn:
        rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    stamp = "2026-01-01T12:00:00.123456Z"
    assert rows == [(1, "then")] + [(n, stamp) for n in range(2, LATEST + 1)]


async def test_a_version_8_database_holding_rows_gains_0009_and_keeps_them(db_file: Path):
    """0009 (issue 12: ARI, RFC 9773; CRLs, RFC 5280 5) on a database in use: its
    certificates and orders read as before, unmarked and replacing nothing, and the
    new columns and tables work at once."""
    with raw(db_file) as conn, conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        for migration in load_migrations("sqlite")[:8]:
            for statement in sqlite_statements(migration.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')",
                         (migration.version, migration.name))
        conn.execute("INSERT INTO accounts (id, status, jwk, thumbprint, contact, "
                     "terms_agreed, created_at) VALUES (?, 'valid', '{}', 't', '[]', 1, ?)",
                     (ACCOUNT, "2025-01-01T00:00:00.000000Z"))
        for serial, status in (("0a", "issued"), ("0b", "revoked")):
            conn.execute(
                "INSERT INTO certificates (serial, issuer, names, profile, not_before, "
                "not_after, created_at, status, der, account_id, order_id, revoked_at, "
                "revocation_reason) VALUES (?, ?, '[\"old.example.test\"]', 'server', ?, ?, ?, "
                "?, ?, ?, 'order-old', ?, ?)",
                (serial, "ab" * 32, "2025-01-01T00:00:00.000000Z",
                 "2027-01-01T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z", status, DER,
                 ACCOUNT, "2025-02-01T00:00:00.000000Z" if status == "revoked" else None,
                 1 if status == "revoked" else None))
        conn.execute("INSERT INTO orders (id, account_id, status, identifiers, expires, "
                     "created_at, certificate_serial) VALUES ('order-old', ?, 'valid', "
                     "'[{\"type\": \"dns\", \"value\": \"old.example.test\"}]', ?, ?, '0a')",
                     (ACCOUNT, "2025-01-08T00:00:00.000000Z", "2025-01-01T00:00:00.000000Z"))
    store = await SqliteStore.open(db_file, clock=FakeClock(T0))
    try:
        assert await store.schema_version() == LATEST
        await assert_0009_kept_and_works(store)
    finally:
        await store.close()


# --- accounts (RFC 8555 7.1.2, 7.3) ---------------------------------------------------
