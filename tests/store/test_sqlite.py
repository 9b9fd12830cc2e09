"""The SQLite store: migrations, the certificate life cycle, races, and open_store."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import acme_ca.store.sqlite.store as sqlite_module
from acme_ca.clock import FakeClock
from acme_ca.domain.models import CertificateRecord, CertificateStatus, Order, OrderStatus
from acme_ca.errors import ConfigError, Conflict, NotFound, StoreError
from acme_ca.store import ReadStore, SqliteStore, Store, open_store
from acme_ca.store.migrations import load_migrations
from acme_ca.store.sqlite.migrate import sqlite_statements
from tests.store.conftest import make_order, reservation, with_accounts

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
DER = b"\x30\x82\x01\x0a" + bytes(range(256))


def make_record(serial: str = "1a2b3c", **changes: object) -> CertificateRecord:
    record = CertificateRecord(
        serial=serial,
        issuer="ab" * 32,
        names=("www.example.test", "example.test", "192.0.2.1"),
        profile="server",
        not_before=T0,
        not_after=T0 + timedelta(days=90),
        created_at=T0,
        account_id="acct-1",
        order_id="order-1",
    )
    return replace(record, **changes)  # type: ignore[arg-type]


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


async def issued(store: SqliteStore, serial: str = "1a2b3c") -> CertificateRecord:
    await store.reserve_serial(make_record(serial))
    return await store.store_certificate(serial, DER)


# --- migrations -----------------------------------------------------------------------


async def test_fresh_database_is_migrated_to_version_1(store: SqliteStore, db_path: Path):
    assert await store.schema_version() == 5
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
                    (4, "orders_processing", stamp), (5, "cluster", stamp)]
    assert {"status", "not_after", "account_id", "order_id", "created_at"} <= indexed


async def test_reopening_does_not_apply_again(store: SqliteStore, db_path: Path):
    await store.reserve_serial(make_record())
    again = await SqliteStore.open(db_path, clock=FakeClock(T0 + timedelta(days=1)))
    try:
        assert await again.schema_version() == 5
        assert (await again.get_certificate("1a2b3c")).status is CertificateStatus.RESERVED
    finally:
        await again.close()
    with raw(db_path) as conn:
        rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    assert rows == [(n, "2026-01-01T12:00:00.123456Z") for n in (1, 2, 3, 4, 5)]


async def test_two_stores_opening_a_fresh_file_at_once_migrate_it_once(db_path: Path):
    results = await asyncio.gather(
        *(SqliteStore.open(db_path) for _ in range(4)), return_exceptions=True
    )
    stores = [result for result in results if isinstance(result, SqliteStore)]
    try:
        assert len(stores) == 4, results
        assert [await each.schema_version() for each in stores] == [5, 5, 5, 5]
    finally:
        for each in stores:
            await each.close()
    with raw(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone() == (5,)


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
        (0, b"5\n")
    ] * 3, outputs
    with raw(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone() == (5,)


async def test_a_database_from_the_future_is_refused(db_path: Path):
    await (await SqliteStore.open(db_path)).close()
    with raw(db_path) as conn, conn:
        conn.execute("INSERT INTO schema_migrations VALUES (7, 'future', '2030-01-01')")
    with pytest.raises(StoreError, match=r"version 7.* up to 5\b"):
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
                                                            (5, "cluster")]
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


def test_sqlite_store_has_every_protocol_method_with_the_same_signature():
    protocols = [base for base in Store.__mro__ if getattr(base, "_is_protocol", False)]
    members = {
        name: member
        for protocol in protocols
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert ReadStore in protocols
    assert {"list_certificates", "record_validation", "hold_lease", "close"} <= set(members)
    for name, member in members.items():
        implementation = getattr(SqliteStore, name)
        assert inspect.iscoroutinefunction(implementation), name
        assert inspect.signature(implementation) == inspect.signature(member), name


# --- the certificate life cycle ---------------------------------------------------------


async def test_reserve_store_get_round_trip(store: SqliteStore):
    record = make_record(not_after=datetime(2026, 4, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    await store.reserve_serial(record)
    reserved = await store.get_certificate("1a2b3c")
    assert reserved == record
    assert reserved.der is None and reserved.status is CertificateStatus.RESERVED

    stored = await store.store_certificate("1a2b3c", DER)
    fetched = await store.get_certificate("1a2b3c")
    assert stored == fetched == replace(record, status=CertificateStatus.ISSUED, der=DER)
    assert fetched.names == ("www.example.test", "example.test", "192.0.2.1")
    assert isinstance(fetched.der, bytes) and fetched.der == DER
    for moment in (fetched.not_before, fetched.not_after, fetched.created_at):
        assert moment.utcoffset() == timedelta(0)
    assert fetched.not_after == datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    assert fetched.not_before.microsecond == 123456


async def test_optional_fields_round_trip_as_none(store: SqliteStore):
    record = make_record("ff", account_id=None, order_id=None, names=())
    await store.reserve_serial(record)
    assert await store.get_certificate("ff") == record


async def test_naive_datetimes_and_non_reserved_records_are_refused(store: SqliteStore):
    with pytest.raises(ValueError, match="naive"):
        await store.reserve_serial(make_record(created_at=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="RESERVED"):
        await store.reserve_serial(make_record(status=CertificateStatus.ISSUED, der=DER))
    with pytest.raises(NotFound):
        await store.get_certificate("1a2b3c")


async def test_a_serial_that_is_not_lowercase_hex_is_refused_by_the_schema(store: SqliteStore):
    with pytest.raises(StoreError, match="CHECK constraint"):
        await store.reserve_serial(make_record("1A2B"))


async def test_reserving_a_serial_twice_is_a_conflict(store: SqliteStore):
    await store.reserve_serial(make_record())
    with pytest.raises(Conflict, match="1a2b3c"):
        await store.reserve_serial(make_record(names=("other.test",)))
    assert (await store.get_certificate("1a2b3c")).names[0] == "www.example.test"


async def test_get_or_store_an_unknown_serial_is_not_found(store: SqliteStore):
    with pytest.raises(NotFound):
        await store.get_certificate("abc")
    with pytest.raises(NotFound):
        await store.store_certificate("abc", DER)


async def test_storing_twice_is_a_conflict(store: SqliteStore):
    await issued(store)
    with pytest.raises(Conflict, match="issued, not reserved"):
        await store.store_certificate("1a2b3c", b"other")
    assert (await store.get_certificate("1a2b3c")).der == DER


async def test_revoke_records_reason_and_time(store: SqliteStore):
    await issued(store)
    when = T0 + timedelta(days=3)
    revoked = await store.revoke_certificate("1a2b3c", 1, when)
    assert revoked.status is CertificateStatus.REVOKED
    assert (revoked.revocation_reason, revoked.revoked_at) == (1, when)
    assert revoked.der == DER
    assert await store.get_certificate("1a2b3c") == revoked


async def test_revoking_twice_is_a_conflict_and_keeps_the_first(store: SqliteStore):
    await issued(store)
    await store.revoke_certificate("1a2b3c", 1, T0)
    with pytest.raises(Conflict, match="already revoked"):
        await store.revoke_certificate("1a2b3c", 4, T0 + timedelta(hours=1))
    kept = await store.get_certificate("1a2b3c")
    assert (kept.revocation_reason, kept.revoked_at) == (1, T0)
    with pytest.raises(Conflict, match="already revoked"):  # guards.refused's wording
        await store.store_certificate("1a2b3c", DER)


async def test_revoking_a_reserved_or_unknown_serial_fails(store: SqliteStore):
    await store.reserve_serial(make_record())
    with pytest.raises(Conflict, match="reserved, not issued"):
        await store.revoke_certificate("1a2b3c", 0, T0)
    assert (await store.get_certificate("1a2b3c")).status is CertificateStatus.RESERVED
    with pytest.raises(NotFound):
        await store.revoke_certificate("abc", 0, T0)


async def test_list_filters_by_status_and_pages_in_creation_order(store: SqliteStore):
    # Created out of serial order, two at the same instant (serial breaks the tie).
    created = {"0e": T0 + timedelta(minutes=2), "0a": T0, "0c": T0, "0b": T0 + timedelta(1)}
    for serial, at in created.items():
        await store.reserve_serial(make_record(serial, created_at=at))
    await store.store_certificate("0c", DER)
    await store.store_certificate("0b", DER)

    first = await store.list_certificates(limit=3)
    assert [r.serial for r in first] == ["0a", "0c", "0e"]
    rest = await store.list_certificates(limit=3, after_serial=first[-1].serial)
    assert [r.serial for r in rest] == ["0b"]
    assert await store.list_certificates(after_serial="0b") == []

    issued_only = await store.list_certificates(status=CertificateStatus.ISSUED, limit=1)
    assert [r.serial for r in issued_only] == ["0c"]
    following = await store.list_certificates(status=CertificateStatus.ISSUED, after_serial="0c")
    assert [r.serial for r in following] == ["0b"]
    assert await store.list_certificates(status=CertificateStatus.REVOKED) == []

    with pytest.raises(NotFound):
        await store.list_certificates(after_serial="99")
    with pytest.raises(ValueError, match="limit"):
        await store.list_certificates(limit=0)


async def test_latest_expiry_of_an_issuer_counts_every_state_and_only_later_ends(
        store: SqliteStore):
    """What decides when an archived intermediate key may go: the latest notAfter among
    the certificates that intermediate signed, reserved and revoked ones included
    (a CRL lists a revoked certificate until it expires, RFC 5280 3.3)."""
    old, new = "0a" * 32, "0b" * 32
    day = timedelta(days=1)
    await store.reserve_serial(make_record("01", issuer=old, not_after=T0 + 10 * day))
    await store.reserve_serial(make_record("02", issuer=old, not_after=T0 + 30 * day))
    await store.reserve_serial(make_record("03", issuer=new, not_after=T0 + 90 * day))
    await store.store_certificate("01", DER)
    await store.revoke_certificate("01", 1, T0)
    assert await store.latest_expiry(old, after=T0) == T0 + 30 * day  # "02" only reserved
    assert await store.latest_expiry(old, after=T0 + 30 * day) is None  # ended by then
    assert await store.latest_expiry(new, after=T0) == T0 + 90 * day
    assert await store.latest_expiry("0c" * 32, after=T0) is None


# --- races and failures ---------------------------------------------------------------


async def test_two_stores_revoking_the_same_serial_at_once_exactly_one_wins(
    store: SqliteStore, db_path: Path
):
    await issued(store)
    other = await SqliteStore.open(db_path)
    try:
        results = await asyncio.gather(
            store.revoke_certificate("1a2b3c", 1, T0),
            other.revoke_certificate("1a2b3c", 4, T0 + timedelta(seconds=1)),
            return_exceptions=True,
        )
    finally:
        await other.close()
    winners = [r for r in results if isinstance(r, CertificateRecord)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert await store.get_certificate("1a2b3c") == winners[0]


async def test_racing_calls_on_one_store_are_serialised(store: SqliteStore):
    await store.reserve_serial(make_record())
    results = await asyncio.gather(
        *(store.store_certificate("1a2b3c", bytes([n])) for n in range(5)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, CertificateRecord)]
    assert len(winners) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 4
    assert (await store.get_certificate("1a2b3c")).der == winners[0].der


async def test_a_failure_inside_a_write_rolls_all_of_it_back(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
):
    """start_issuance moves the order and reserves the serial, then maps the order row,
    all before its COMMIT: a failure there undoes both statements."""
    await with_accounts(store)
    await store.create_order(make_order("o", [], status=OrderStatus.READY), [])

    def broken(row: sqlite3.Row) -> Order:
        raise RuntimeError("failed after the UPDATE, before the COMMIT")

    monkeypatch.setattr(sqlite_module, "to_order", broken)
    with pytest.raises(RuntimeError, match="before the COMMIT"):
        await store.start_issuance("o", reservation("1a2b3c", "o"))
    monkeypatch.undo()

    assert (await store.get_order("o")).status is OrderStatus.READY
    with pytest.raises(NotFound):
        await store.get_certificate("1a2b3c")
    started = await store.start_issuance("o", reservation("1a2b3c", "o"))
    assert started.status is OrderStatus.PROCESSING  # no transaction left open


@pytest.mark.parametrize("steps", range(8))
async def test_a_cancelled_write_is_all_or_nothing_and_leaves_no_transaction_open(
    store: SqliteStore, steps: int
):
    await store.reserve_serial(make_record())
    task = asyncio.create_task(store.store_certificate("1a2b3c", DER))
    for _ in range(steps):  # cancel at a different await each time
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    record = await store.get_certificate("1a2b3c")
    assert (record.status, record.der) in {
        (CertificateStatus.RESERVED, None),
        (CertificateStatus.ISSUED, DER),
    }
    await store.reserve_serial(make_record("0d"))  # BEGIN would fail inside an open one
    assert (await store.get_certificate("0d")).status is CertificateStatus.RESERVED


async def test_a_closed_store_refuses_calls(db_path: Path):
    closed = await SqliteStore.open(db_path)
    await closed.close()
    await closed.close()
    with pytest.raises(StoreError, match="closed"):
        await closed.get_certificate("1a2b3c")


# --- open_store ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://acme:secret@db.example.test/acme",
        "postgres://acme:secret@db.example.test/acme",
        "POSTGRESQL://acme:secret@db.example.test/acme",
    ],
)
async def test_open_store_says_postgres_is_not_available_yet(url: str):
    with pytest.raises(ConfigError, match=r"storage\.url: PostgreSQL .* not available yet"):
        await open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ca.db",
        "sqlite:///",
        "sqlite://ca.db",
        "sqlite:ca.db",
        "mysql://acme:secret@db.example.test/acme",
    ],
)
async def test_open_store_refuses_other_urls_without_echoing_them(url: str):
    with pytest.raises(ConfigError, match=r"storage\.url.*sqlite:///") as caught:
        await open_store(url)
    assert "secret" not in str(caught.value)


async def test_open_store_creates_missing_parents_0700_and_a_0600_file(tmp_path: Path):
    existing_mode = stat.S_IMODE(tmp_path.stat().st_mode)
    path = tmp_path / "var" / "lib" / "acme-ca" / "ca.db"
    opened = await open_store(f"sqlite:///{path}")
    try:
        assert isinstance(opened, SqliteStore)
        assert await opened.schema_version() == 5
    finally:
        await opened.close()
    for folder in (tmp_path / "var", tmp_path / "var" / "lib", path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == existing_mode  # existing ones untouched


async def test_open_store_takes_a_relative_path_and_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    relative = await open_store("sqlite:///data/ca.db")
    memory = await open_store("sqlite:///:memory:")
    try:
        await relative.reserve_serial(make_record())
        assert await memory.schema_version() == 5
        with pytest.raises(NotFound):
            await memory.get_certificate("1a2b3c")
    finally:
        await relative.close()
        await memory.close()
    assert (tmp_path / "data" / "ca.db").is_file()
    assert not (tmp_path / ":memory:").exists()
