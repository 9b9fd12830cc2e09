"""The SQLite store's ACME resources: accounts, orders, authorizations, challenges, nonces."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sqlite3
from dataclasses import replace
from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest

import acme_ca.store.sqlite.accounts as accounts_module
import acme_ca.store.sqlite.authorizations as authz_module
import acme_ca.store.sqlite.nonces as nonces_module
import acme_ca.store.sqlite.orders as orders_module
from acme_ca.clock import FakeClock
from acme_ca.domain.models import (
    AccountStatus,
    AuthorizationStatus,
    CertificateStatus,
    Challenge,
    ChallengeStatus,
    Identifier,
    Order,
    OrderStatus,
)
from acme_ca.errors import Conflict, NotFound, StoreError
from acme_ca.store import SqliteStore, Store
from acme_ca.store.cluster import LeaseStore, NonceStore
from acme_ca.store.migrations import load_migrations
from acme_ca.store.reads import ReadStore
from acme_ca.store.sqlite.migrate import sqlite_statements
from acme_ca.store.sqlite.opening import nonce_path
from acme_ca.store.writes import WriteStore
from tests.store.conftest import (
    ACCOUNT,
    DER,
    OTHER,
    PROBLEM,
    T0,
    make_account,
    make_authorization,
    make_order,
    reservation,
)


def raw(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path))


async def processing(store: SqliteStore, challenge_id: str) -> Challenge:
    return await store.update_challenge(
        challenge_id, expected=ChallengeStatus.PENDING, status=ChallengeStatus.PROCESSING)


async def reserve(store: SqliteStore, serial: str, order_id: str) -> None:
    await store.reserve_serial(reservation(serial, order_id))


async def valid_authorization(store: SqliteStore, authz_id: str, value: str, *,
                              account_id: str = ACCOUNT, **changes: object) -> None:
    """A VALID authorization, created (as always) with an order listing it."""
    authz = make_authorization(authz_id, value, account_id=account_id,
                               status=AuthorizationStatus.VALID, **changes)  # type: ignore[arg-type]
    order = make_order(f"order-{authz_id}", [authz], account_id=account_id)
    await store.create_order(order, [authz])


# --- the contract and the schema ------------------------------------------------------


def test_store_includes_the_acme_protocols_and_sqlite_implements_them_exactly():
    protocols = (NonceStore, LeaseStore, ReadStore, WriteStore)
    assert all(protocol in Store.__mro__ for protocol in protocols)
    members = {
        name: member
        for protocol in protocols
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert len(members) == 33
    for name, member in members.items():
        implementation = getattr(SqliteStore, name)
        assert inspect.iscoroutinefunction(implementation), name
        assert inspect.signature(implementation) == inspect.signature(member), name


async def test_fresh_database_is_at_version_5_with_the_acme_tables(
    acme_store: SqliteStore, db_file: Path
):
    assert await acme_store.schema_version() == 5
    assert [(m.version, m.name) for m in load_migrations("sqlite")][1] == (2, "acme")
    with raw(db_file) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"accounts", "orders", "authorizations", "challenges",
            "order_authorizations", "leases"} <= tables
    assert "nonces" not in tables  # 0003: in a file of their own
    with raw(Path(nonce_path(str(db_file)))) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "nonces" in tables


REFUSED_ROWS = [
    "INSERT INTO accounts VALUES ('a', 'bogus', '{}', 't', '[]', 1, 'x')",
    "INSERT INTO accounts VALUES ('a', 'valid', '{}', 't', '[]', 2, 'x')",
    "INSERT INTO orders (id, account_id, status, identifiers, expires, created_at) "
    "VALUES ('o', 'acct-1', 'bogus', '[]', 'x', 'x')",
    # RFC 8555 7.1.3: a valid order has a certificate.
    "INSERT INTO orders (id, account_id, status, identifiers, expires, created_at) "
    "VALUES ('o', 'acct-1', 'valid', '[]', 'x', 'x')",
    "INSERT INTO authorizations VALUES ('z', 'acct-1', 'dns', 'x', 0, 'bogus', 'x', 'x')",
    "INSERT INTO authorizations VALUES ('z', 'acct-1', 'dns', 'x', 2, 'valid', 'x', 'x')",
    "INSERT INTO challenges (id, authorization_id, type, token, status) "
    "VALUES ('c', 'z', 'http-01', 't', 'bogus')",
]


@pytest.mark.parametrize("sql", REFUSED_ROWS)
async def test_the_schema_checks_status_values_and_flags(
    acme_store: SqliteStore, db_file: Path, sql: str
):
    """RFC 8555 7.1.6 lists the statuses each resource may have; no other is stored."""
    with raw(db_file) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(sql)


# The statements the store runs, by module: each must find its rows through an index.
LOOKUPS = [
    (accounts_module._BY_THUMBPRINT, ("t",), "accounts_by_thumbprint"),
    (orders_module._NEXT_PAGE, (ACCOUNT, 100, "o"), "orders_by_account"),
    (orders_module._FIRST_PAGE, (ACCOUNT, 100), "orders_by_account"),
    (orders_module._BY_ID, ("o",), "sqlite_autoindex_orders_1"),
    (orders_module._FOR_AUTHORIZATION, ("a",), "order_authorizations_by_authorization"),
    (orders_module.PROCESSING_SINCE, ("t", 100), "orders_processing"),
    (authz_module._REUSABLE, (ACCOUNT, "x", "t", "dns", 0), "authorizations_for_reuse"),
    (authz_module._VALID, (ACCOUNT, "t", "[]"), "authorizations_for_reuse"),
    (authz_module._PROCESSING, ("t", 100), "challenges_processing"),
    (authz_module._BY_ID, ("a",), "challenges_by_authorization"),
    (authz_module._PENDING_ORDERS, ("a",), "order_authorizations_by_authorization"),
    (authz_module._LISTED, ("o",), "order_authorizations USING PRIMARY KEY (order_id=?)"),
]
NONCE_LOOKUPS = [
    (nonces_module._CONSUME, ("n",), "PRIMARY KEY"),
    (nonces_module._PURGE, ("t",), "nonces_by_expiry"),
]


@pytest.mark.parametrize(("sql", "params", "index", "nonces"),
                         [(*lookup, False) for lookup in LOOKUPS]
                         + [(*lookup, True) for lookup in NONCE_LOOKUPS])
async def test_every_lookup_uses_an_index(
    acme_store: SqliteStore, db_file: Path, sql: str, params: tuple[object, ...], index: str,
    nonces: bool,
):
    with raw(Path(nonce_path(str(db_file))) if nonces else db_file) as conn:
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert index in plan, plan
    assert "SCAN authorizations" not in plan and "SCAN challenges" not in plan, plan
    assert "SCAN orders" not in plan and "SCAN order_authorizations" not in plan, plan
    assert "SCAN accounts" not in plan and "SCAN nonces" not in plan, plan


async def test_a_version_1_database_upgrades_to_5_keeping_its_certificates(db_file: Path):
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
        assert await store.schema_version() == 5
        kept = await store.get_certificate("0a")
        assert (kept.names, kept.der, kept.order_id) == (("old.example.test",), DER, "order-old")
        assert (await store.create_account(make_account())).id == ACCOUNT
    finally:
        await store.close()
    with raw(db_file) as conn:
        rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    assert rows == [(1, "then")] + [(n, "2026-01-01T12:00:00.123456Z") for n in (2, 3, 4, 5)]


# --- accounts (RFC 8555 7.1.2, 7.3) ---------------------------------------------------


async def test_account_round_trip_in_utc(acme_store: SqliteStore):
    plus_two = timezone(timedelta(hours=2))
    account = make_account("acct-3", contact=(), terms_agreed=False,
                           created_at=T0.astimezone(plus_two))
    created = await acme_store.create_account(account)
    fetched = await acme_store.get_account("acct-3")
    assert created == fetched == replace(account, created_at=T0)
    assert fetched.created_at.tzinfo is UTC and fetched.terms_agreed is False
    assert await acme_store.find_account_by_thumbprint("thumb-acct-3") == fetched
    assert (await acme_store.get_account(ACCOUNT)).contact == ("mailto:admin@example.test",)
    with pytest.raises(NotFound):
        await acme_store.get_account("nobody")
    with pytest.raises(NotFound):
        await acme_store.find_account_by_thumbprint("thumb-nobody")
    with pytest.raises(ValueError, match="naive"):
        await acme_store.create_account(make_account("acct-4", created_at=T0.replace(tzinfo=None)))


async def test_one_key_one_account(acme_store: SqliteStore):
    """RFC 8555 7.3: a second newAccount with the same key finds the first account."""
    with pytest.raises(Conflict, match="thumb-acct-1"):
        await acme_store.create_account(make_account("acct-9", thumbprint="thumb-acct-1"))
    with pytest.raises(Conflict):
        await acme_store.create_account(make_account(ACCOUNT, thumbprint="thumb-new"))
    assert (await acme_store.find_account_by_thumbprint("thumb-acct-1")).id == ACCOUNT
    with pytest.raises(NotFound):
        await acme_store.get_account("acct-9")


async def test_update_account_is_a_compare_and_set_on_status(acme_store: SqliteStore):
    """RFC 8555 7.3.2 (contact update) and 7.3.6 (deactivation, final)."""
    valid = AccountStatus.VALID
    updated = await acme_store.update_account(ACCOUNT, expected_status=valid,
                                              contact=["mailto:new@example.test"])
    assert updated.contact == ("mailto:new@example.test",) and updated.status is valid
    cleared = await acme_store.update_account(ACCOUNT, expected_status=valid, contact=[])
    assert cleared.contact == ()
    gone = await acme_store.update_account(ACCOUNT, expected_status=valid,
                                           status=AccountStatus.DEACTIVATED)
    assert (gone.status, gone.contact) == (AccountStatus.DEACTIVATED, ())
    with pytest.raises(Conflict, match="deactivated, not valid"):
        await acme_store.update_account(ACCOUNT, expected_status=valid, contact=["mailto:x@y.z"])
    assert await acme_store.get_account(ACCOUNT) == gone
    with pytest.raises(NotFound):
        await acme_store.update_account("nobody", expected_status=valid, contact=[])


async def test_key_change_moves_the_thumbprint(acme_store: SqliteStore):
    """RFC 8555 7.3.5: the account is found by its new key only."""
    changed = await acme_store.change_account_key(
        ACCOUNT, old_thumbprint="thumb-acct-1", jwk='{"new":1}', thumbprint="thumb-new")
    assert (changed.jwk, changed.thumbprint) == ('{"new":1}', "thumb-new")
    assert await acme_store.find_account_by_thumbprint("thumb-new") == changed
    with pytest.raises(NotFound):
        await acme_store.find_account_by_thumbprint("thumb-acct-1")


async def test_key_change_conflicts(acme_store: SqliteStore):
    """RFC 8555 7.3.5: a key another account holds is refused (409 at the API)."""
    before = await acme_store.get_account(ACCOUNT)
    with pytest.raises(Conflict, match="another account"):
        await acme_store.change_account_key(
            ACCOUNT, old_thumbprint="thumb-acct-1", jwk="{}", thumbprint="thumb-acct-2")
    with pytest.raises(Conflict, match="changed meanwhile"):
        await acme_store.change_account_key(
            ACCOUNT, old_thumbprint="thumb-stale", jwk="{}", thumbprint="thumb-new")
    assert await acme_store.get_account(ACCOUNT) == before
    await acme_store.update_account(OTHER, expected_status=AccountStatus.VALID,
                                    status=AccountStatus.DEACTIVATED)
    with pytest.raises(Conflict, match="deactivated, not valid"):
        await acme_store.change_account_key(
            OTHER, old_thumbprint="thumb-acct-2", jwk="{}", thumbprint="thumb-new")
    with pytest.raises(NotFound):
        await acme_store.change_account_key(
            "nobody", old_thumbprint="t", jwk="{}", thumbprint="thumb-new")


# --- orders (RFC 8555 7.1.3, 7.4) -------------------------------------------------------


async def test_order_round_trip_with_new_authorizations_and_challenges(acme_store: SqliteStore):
    plus_two = timezone(timedelta(hours=2))
    authz = make_authorization("az-1", types=("tls-alpn-01", "http-01", "dns-01"),
                               expires=(T0 + timedelta(days=7)).astimezone(plus_two))
    order = make_order("order-1", [authz], not_before=T0, not_after=T0 + timedelta(days=30),
                       created_at=T0.astimezone(plus_two))
    created = await acme_store.create_order(order, [authz])
    normalised = replace(order, created_at=T0)
    assert created == await acme_store.get_order("order-1") == normalised
    fetched = await acme_store.get_authorization("az-1")
    assert fetched == replace(authz, expires=T0 + timedelta(days=7))
    assert [c.type for c in fetched.challenges] == ["tls-alpn-01", "http-01", "dns-01"]
    assert fetched.expires.tzinfo is UTC and created.created_at.tzinfo is UTC
    assert await acme_store.get_challenge("az-1-dns-01") == authz.challenges[2]
    with pytest.raises(NotFound):
        await acme_store.get_order("nothing")
    with pytest.raises(NotFound):
        await acme_store.get_authorization("nothing")
    with pytest.raises(NotFound):
        await acme_store.get_challenge("nothing")


async def test_order_keeps_its_authorizations_in_order(acme_store: SqliteStore):
    """RFC 8555 7.1.3: authorizations is an array; reused and new ones keep their places."""
    await valid_authorization(acme_store, "az-m", "m.example.test")
    new = [make_authorization(authz_id, f"{authz_id}.example.test")
           for authz_id in ("az-z", "az-a", "az-q")]
    ids = ("az-z", "az-m", "az-a", "az-q")
    order = make_order("order-2", new, authorization_ids=ids, created_at=T0 + timedelta(1))
    await acme_store.create_order(order, new)
    assert (await acme_store.get_order("order-2")).authorization_ids == ids
    listing = await acme_store.orders_for_authorization("az-m")
    assert [o.id for o in listing] == ["order-az-m", "order-2"]
    assert listing[1].authorization_ids == ids
    assert await acme_store.orders_for_authorization("nothing") == []


async def test_create_order_writes_all_or_nothing(acme_store: SqliteStore, db_file: Path):
    first = make_authorization("az-1")
    await acme_store.create_order(make_order("order-1", [first]), [first])
    # The second challenge of az-3 reuses an existing id: the last insert fails.
    clash = replace(first.challenges[0], authorization_id="az-3")
    new = [make_authorization("az-2"),
           replace(make_authorization("az-3", types=("dns-01",)),
                   challenges=(Challenge("az-3-dns-01", "az-3", "dns-01", "t"), clash))]
    with pytest.raises(Conflict, match="order-2"):
        await acme_store.create_order(make_order("order-2", new), new)
    with raw(db_file) as conn:
        counts = [conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                  for table in ("orders", "authorizations", "challenges", "order_authorizations")]
    assert counts == [1, 1, 1, 1]
    with pytest.raises(NotFound):
        await acme_store.get_order("order-2")
    with pytest.raises(Conflict):  # an order id is used once
        await acme_store.create_order(make_order("order-1", []), [])


async def test_create_order_refuses_inconsistent_input(acme_store: SqliteStore):
    authz = make_authorization("az-1")
    with pytest.raises(ValueError, match="not listed"):
        await acme_store.create_order(make_order("o", []), [authz])
    with pytest.raises(ValueError, match="another account"):
        await acme_store.create_order(make_order("o", [authz], account_id=OTHER), [authz])
    with pytest.raises(ValueError, match="twice"):
        await acme_store.create_order(make_order("o", [authz, authz]), [authz])
    stray = replace(authz, challenges=(replace(authz.challenges[0], authorization_id="x"),))
    with pytest.raises(ValueError, match="names authorization x"):
        await acme_store.create_order(make_order("o", [stray]), [stray])
    with pytest.raises(StoreError, match="FOREIGN KEY"):  # a reused id that does not exist
        await acme_store.create_order(make_order("o", [authz]), [])


async def test_orders_list_pages_by_creation_without_overlap(memory_store: SqliteStore):
    """RFC 8555 7.1.2.1: the orders list, paginated (here oldest first, pages of 100)."""
    expected = []
    for n in range(250):  # created out of id order, ten at each instant (the id breaks ties)
        order_id = f"order-{(n * 37) % 250:03d}"
        created_at = T0 + timedelta(seconds=n // 10)
        expected.append((created_at, order_id))
        await memory_store.create_order(make_order(order_id, [], created_at=created_at), [])
    await memory_store.create_order(make_order("theirs", [], account_id=OTHER), [])
    pages = [await memory_store.list_account_orders(ACCOUNT, limit=100)]
    while len(pages[-1]) == 100:
        pages.append(await memory_store.list_account_orders(ACCOUNT, limit=100,
                                                            after=pages[-1][-1]))
    assert [len(page) for page in pages] == [100, 100, 50]
    assert [i for page in pages for i in page] == [i for _, i in sorted(expected)]
    assert await memory_store.list_account_orders(OTHER, limit=100) == ["theirs"]
    assert await memory_store.list_account_orders(OTHER, limit=5, after="order-000") == []
    assert await memory_store.list_account_orders(ACCOUNT, limit=5, after="nothing") == []
    with pytest.raises(ValueError, match="limit"):
        await memory_store.list_account_orders(ACCOUNT, limit=0)


async def test_order_status_is_a_compare_and_set(acme_store: SqliteStore):
    """RFC 8555 7.1.6: ready -> processing once; invalid carries an error document."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.READY), [])
    moved = await acme_store.update_order_status(
        "o", expected=OrderStatus.READY, status=OrderStatus.PROCESSING)
    assert moved.status is OrderStatus.PROCESSING and moved.error is None
    with pytest.raises(Conflict, match="processing, not ready"):
        await acme_store.update_order_status(
            "o", expected=OrderStatus.READY, status=OrderStatus.PROCESSING)
    failed = await acme_store.update_order_status(
        "o", expected=OrderStatus.PROCESSING, status=OrderStatus.INVALID, error=PROBLEM)
    assert await acme_store.get_order("o") == failed and failed.error == PROBLEM
    with pytest.raises(NotFound):
        await acme_store.update_order_status(
            "nothing", expected=OrderStatus.READY, status=OrderStatus.PROCESSING)
    with pytest.raises(ValueError, match="finish_order"):
        await acme_store.update_order_status(
            "o", expected=OrderStatus.PROCESSING, status=OrderStatus.VALID)


async def test_finish_order_issues_and_validates_together(acme_store: SqliteStore):
    """RFC 8555 7.4: processing -> valid, with the certificate URL, in one step."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.PROCESSING), [])
    await reserve(acme_store, "0a", "o")
    finished = await acme_store.finish_order("o", "0a", DER)
    assert (finished.status, finished.certificate_serial) == (OrderStatus.VALID, "0a")
    assert await acme_store.get_order("o") == finished
    record = await acme_store.get_certificate("0a")
    assert (record.status, record.der) == (CertificateStatus.ISSUED, DER)


@pytest.mark.parametrize("order_status", [OrderStatus.READY, OrderStatus.INVALID])
async def test_finish_order_on_an_order_no_longer_processing_stores_the_certificate_alone(
    acme_store: SqliteStore, order_status: OrderStatus
):
    """Boulder's rule (the store knows every certificate signed): a certificate signed for
    an order that a sweeper ended meanwhile is stored all the same; the order is left as
    it is (an invalid order never becomes valid, RFC 8555 7.1.6) and comes back so."""
    await acme_store.create_order(make_order("o", [], status=order_status), [])
    await reserve(acme_store, "0a", "o")
    unchanged = await acme_store.get_order("o")
    assert await acme_store.finish_order("o", "0a", DER) == unchanged
    record = await acme_store.get_certificate("0a")
    assert (record.status, record.der) == (CertificateStatus.ISSUED, DER)
    assert await acme_store.get_order("o") == unchanged


async def test_finish_order_needs_a_certificate_reserved_for_that_order(acme_store: SqliteStore):
    await acme_store.create_order(make_order("o", [], status=OrderStatus.PROCESSING), [])
    await acme_store.create_order(make_order("p", [], status=OrderStatus.PROCESSING), [])
    await reserve(acme_store, "0a", "o")
    await reserve(acme_store, "0b", "p")
    with pytest.raises(Conflict, match="reserved for order p"):
        await acme_store.finish_order("o", "0b", DER)
    await acme_store.finish_order("p", "0b", DER)
    with pytest.raises(Conflict, match="issued, not reserved"):
        await acme_store.finish_order("o", "0b", DER)
    with pytest.raises(NotFound):
        await acme_store.finish_order("o", "ff", DER)
    await reserve(acme_store, "0c", "nothing")
    with pytest.raises(NotFound):
        await acme_store.finish_order("nothing", "0c", DER)
    assert (await acme_store.get_certificate("0c")).status is CertificateStatus.RESERVED
    assert (await acme_store.get_order("o")).status is OrderStatus.PROCESSING
    assert (await acme_store.get_certificate("0a")).status is CertificateStatus.RESERVED


async def test_one_finalize_of_eight_over_two_stores_wins(
    acme_store: SqliteStore, second_store: SqliteStore
):
    """RFC 8555 7.4: concurrent finalize requests: exactly one moves ready -> processing."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.READY), [])
    results = await asyncio.gather(
        *(store.update_order_status("o", expected=OrderStatus.READY,
                                    status=OrderStatus.PROCESSING)
          for store in (acme_store, second_store) * 4),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Order)]
    assert len(winners) == 1 and sum(isinstance(r, Conflict) for r in results) == 7, results
    assert await second_store.get_order("o") == winners[0]


async def test_start_issuance_moves_the_order_and_reserves_the_serial_together(
    acme_store: SqliteStore,
):
    """RFC 8555 7.4: ready -> processing on finalize; the serial is stored before it is
    signed (Boulder's ISSUANCE-CYCLE), in the same transaction."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.READY), [])
    started = await acme_store.start_issuance("o", reservation("0a", "o"))
    assert started.status is OrderStatus.PROCESSING
    assert (await acme_store.get_certificate("0a")).status is CertificateStatus.RESERVED
    finished = await acme_store.finish_order("o", "0a", DER)
    assert finished.status is OrderStatus.VALID


async def test_start_issuance_writes_nothing_unless_the_order_is_ready(
    acme_store: SqliteStore,
):
    await acme_store.create_order(make_order("o", [], status=OrderStatus.PENDING), [])
    with pytest.raises(Conflict, match="pending, not ready"):
        await acme_store.start_issuance("o", reservation("0a", "o"))
    with pytest.raises(NotFound):
        await acme_store.get_certificate("0a")
    with pytest.raises(NotFound):
        await acme_store.start_issuance("nothing", reservation("0b", "nothing"))
    with pytest.raises(ValueError, match="for order p"):
        await acme_store.start_issuance("o", reservation("0c", "p"))
    await acme_store.create_order(make_order("r", [], status=OrderStatus.READY), [])
    await reserve(acme_store, "0d", "r")
    with pytest.raises(StoreError, match="0d already exists"):  # the order stays ready
        await acme_store.start_issuance("r", reservation("0d", "r"))
    assert (await acme_store.get_order("r")).status is OrderStatus.READY


async def test_one_start_issuance_of_eight_over_two_stores_wins(
    acme_store: SqliteStore, second_store: SqliteStore
):
    """Concurrent finalize requests, in two processes: exactly one reserves a serial."""
    await acme_store.create_order(make_order("o", [], status=OrderStatus.READY), [])
    results = await asyncio.gather(
        *(store.start_issuance("o", reservation(f"0{n}", "o"))
          for n, store in enumerate((acme_store, second_store) * 4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Order) for r in results) == 1, results
    assert sum(isinstance(r, Conflict) for r in results) == 7, results
    reserved = await acme_store.list_certificates(status=CertificateStatus.RESERVED)
    assert len(reserved) == 1


# --- authorizations and challenges (RFC 8555 7.1.4, 7.5) ------------------------------


async def test_reusable_authorization_is_the_latest_expiring_valid_one_that_fits(
    acme_store: SqliteStore,
):
    """RFC 8555 7.1.3/7.4: a server may reuse a valid authorization in a new order."""
    www, later = Identifier("dns", "www.example.test"), T0 + timedelta(days=2)
    await valid_authorization(acme_store, "az-late", www.value, expires=T0 + timedelta(days=30))
    await valid_authorization(acme_store, "az-soon", www.value, expires=T0 + timedelta(days=3))
    await valid_authorization(acme_store, "az-old", www.value, expires=T0 + timedelta(days=1))
    await valid_authorization(acme_store, "az-wild", www.value, wildcard=True,
                              expires=T0 + timedelta(days=60))
    await valid_authorization(acme_store, "az-other", www.value, account_id=OTHER,
                              expires=T0 + timedelta(days=90))
    pending = make_authorization("az-pending", www.value, expires=T0 + timedelta(days=99))
    await acme_store.create_order(make_order("o", [pending]), [pending])

    found = await acme_store.find_reusable_authorization(ACCOUNT, www, False, later)
    assert found is not None and found.id == "az-late"
    assert found.challenges == (await acme_store.get_authorization("az-late")).challenges
    wild = await acme_store.find_reusable_authorization(ACCOUNT, www, True, later)
    assert wild is not None and wild.id == "az-wild"
    theirs = await acme_store.find_reusable_authorization(OTHER, www, False, later)
    assert theirs is not None and theirs.id == "az-other"
    after_30_days = T0 + timedelta(days=30)  # expires must be strictly later
    assert await acme_store.find_reusable_authorization(ACCOUNT, www, False, after_30_days) is None
    ip = Identifier("ip", www.value)
    assert await acme_store.find_reusable_authorization(ACCOUNT, ip, False, later) is None
    assert await acme_store.find_reusable_authorization(
        ACCOUNT, Identifier("dns", "example.test"), False, later) is None


async def test_valid_authorizations_for_a_set_of_names(acme_store: SqliteStore):
    """RFC 8555 7.6: revocation by an account holding authorizations for every name."""
    await valid_authorization(acme_store, "az-www", "www.example.test")
    await valid_authorization(acme_store, "az-api", "api.example.test")
    await valid_authorization(acme_store, "az-gone", "old.example.test",
                              expires=T0 + timedelta(hours=1))
    await valid_authorization(acme_store, "az-wild", "example.test", wildcard=True)
    await valid_authorization(acme_store, "az-other", "mail.example.test", account_id=OTHER)
    names = [Identifier("dns", n) for n in
             ("www.example.test", "old.example.test", "mail.example.test", "*.example.test",
              "example.test")]
    found = await acme_store.valid_authorizations(ACCOUNT, names, T0 + timedelta(hours=2))
    assert sorted(a.id for a in found) == ["az-wild", "az-www"]
    assert await acme_store.valid_authorizations(ACCOUNT, [], T0) == []


async def test_authorization_and_challenge_compare_and_set(acme_store: SqliteStore):
    """RFC 8555 7.5.1/7.5.2: pending -> processing once; deactivation of a pending one."""
    authz = make_authorization("az-1", types=("http-01", "dns-01"))
    await acme_store.create_order(make_order("o", [authz]), [authz])
    started = await processing(acme_store, "az-1-http-01")
    assert started == replace(authz.challenges[0], status=ChallengeStatus.PROCESSING)
    with pytest.raises(Conflict, match="processing, not pending"):
        await processing(acme_store, "az-1-http-01")
    with pytest.raises(NotFound):
        await processing(acme_store, "nothing")
    assert await acme_store.processing_challenges(T0, limit=10) == [started]

    later = T0 + timedelta(days=30)
    moved = await acme_store.update_authorization_status(
        "az-1", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.DEACTIVATED,
        expires=later)
    assert (moved.status, moved.expires) == (AuthorizationStatus.DEACTIVATED, later)
    assert moved.challenges[0] == started and moved == await acme_store.get_authorization("az-1")
    with pytest.raises(Conflict, match="deactivated, not pending"):
        await acme_store.update_authorization_status(
            "az-1", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.VALID)
    with pytest.raises(NotFound):
        await acme_store.update_authorization_status(
            "nothing", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.VALID)
    unchanged = await acme_store.update_authorization_status(
        "az-1", expected=AuthorizationStatus.DEACTIVATED, status=AuthorizationStatus.DEACTIVATED)
    assert unchanged.expires == later


# --- record_validation (RFC 8555 7.1.6) ------------------------------------------------


async def two_name_order(store: SqliteStore) -> None:
    """order-1 needs az-a and az-b; order-2 reuses az-a alone."""
    az_a = make_authorization("az-a", "a.example.test")
    az_b = make_authorization("az-b", "b.example.test")
    await store.create_order(make_order("order-1", [az_a, az_b]), [az_a, az_b])
    await store.create_order(make_order("order-2", [az_a]), [])
    for challenge_id in ("az-a-http-01", "az-b-http-01"):
        await processing(store, challenge_id)


async def test_an_order_is_ready_when_its_last_authorization_becomes_valid(
    acme_store: SqliteStore,
):
    """RFC 8555 7.1.6: pending -> ready once all authorizations are valid, in one write."""
    await two_name_order(acme_store)
    lifetime = T0 + timedelta(days=30)
    challenge, authz = await acme_store.record_validation(
        "az-a-http-01", valid=True, error=None, validated_at=T0, authorization_expires=lifetime)
    assert (challenge.status, challenge.validated_at, challenge.error) == (
        ChallengeStatus.VALID, T0, None)
    assert (authz.status, authz.expires, authz.challenges) == (
        AuthorizationStatus.VALID, lifetime, (challenge,))
    assert await acme_store.get_authorization("az-a") == authz
    assert await acme_store.get_challenge("az-a-http-01") == challenge
    assert (await acme_store.get_order("order-1")).status is OrderStatus.PENDING
    assert (await acme_store.get_order("order-2")).status is OrderStatus.READY

    await acme_store.record_validation(
        "az-b-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    assert (await acme_store.get_order("order-1")).status is OrderStatus.READY
    assert (await acme_store.get_authorization("az-b")).expires == T0 + timedelta(days=7)
    assert await acme_store.processing_challenges(T0, limit=10) == []


async def test_a_failed_validation_invalidates_the_pending_orders_with_its_error(
    acme_store: SqliteStore,
):
    """RFC 8555 7.1.6: an invalid authorization makes its pending orders invalid."""
    await two_name_order(acme_store)
    ready = make_order("order-3", [], status=OrderStatus.READY, authorization_ids=("az-b",))
    await acme_store.create_order(ready, [])
    challenge, authz = await acme_store.record_validation(
        "az-b-http-01", valid=False, error=PROBLEM, validated_at=T0,
        authorization_expires=None)
    assert (challenge.status, challenge.error) == (ChallengeStatus.INVALID, PROBLEM)
    assert authz.status is AuthorizationStatus.INVALID
    failed = await acme_store.get_order("order-1")
    assert (failed.status, failed.error) == (OrderStatus.INVALID, PROBLEM)
    assert (await acme_store.get_order("order-2")).status is OrderStatus.PENDING  # not listed
    assert (await acme_store.get_order("order-3")).status is OrderStatus.READY  # not pending


async def test_recording_twice_is_a_conflict_and_changes_nothing(acme_store: SqliteStore):
    """RFC 8555 7.1.6: a settled challenge or authorization is final."""
    await two_name_order(acme_store)
    await acme_store.record_validation(
        "az-a-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    before = (await acme_store.get_authorization("az-a"), await acme_store.get_order("order-1"))
    with pytest.raises(Conflict, match="valid, not processing"):
        await acme_store.record_validation(
            "az-a-http-01", valid=False, error=PROBLEM, validated_at=T0 + timedelta(1),
            authorization_expires=None)
    assert (await acme_store.get_authorization("az-a"), await acme_store.get_order("order-1")
            ) == before
    with pytest.raises(NotFound):
        await acme_store.record_validation(
            "nothing", valid=True, error=None, validated_at=T0, authorization_expires=None)


async def test_an_authorization_no_longer_pending_rolls_the_challenge_back(
    acme_store: SqliteStore,
):
    await two_name_order(acme_store)
    await acme_store.update_authorization_status(
        "az-b", expected=AuthorizationStatus.PENDING, status=AuthorizationStatus.DEACTIVATED)
    with pytest.raises(Conflict, match="deactivated, not pending"):
        await acme_store.record_validation(
            "az-b-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    challenge = await acme_store.get_challenge("az-b-http-01")
    assert (challenge.status, challenge.validated_at) == (ChallengeStatus.PROCESSING, None)


async def test_record_validation_is_one_transaction(acme_store: SqliteStore, db_file: Path):
    """If the order update fails, the challenge and authorization are not written either."""
    await two_name_order(acme_store)
    with raw(db_file) as conn:
        conn.execute("CREATE TRIGGER no_order_changes BEFORE UPDATE ON orders "
                     "BEGIN SELECT RAISE(ABORT, 'orders are read-only today'); END")
    with pytest.raises(StoreError, match="read-only today"):
        await acme_store.record_validation(
            "az-a-http-01", valid=True, error=None, validated_at=T0, authorization_expires=None)
    assert (await acme_store.get_challenge("az-a-http-01")).status is ChallengeStatus.PROCESSING
    assert (await acme_store.get_authorization("az-a")).status is AuthorizationStatus.PENDING


async def test_two_stores_recording_one_challenge_exactly_one_wins(
    acme_store: SqliteStore, second_store: SqliteStore
):
    """RFC 8555 7.1.6 with two processes validating the same challenge."""
    await two_name_order(acme_store)
    results = await asyncio.gather(
        acme_store.record_validation("az-a-http-01", valid=True, error=None,
                                     validated_at=T0, authorization_expires=None),
        second_store.record_validation("az-a-http-01", valid=False, error=PROBLEM,
                                       validated_at=T0, authorization_expires=None),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, tuple)]
    assert len(winners) == 1 and sum(isinstance(r, Conflict) for r in results) == 1, results
    challenge, authz = winners[0]
    assert await second_store.get_authorization("az-a") == authz
    assert await second_store.get_challenge("az-a-http-01") == challenge
    won = authz.status is AuthorizationStatus.VALID
    expected = OrderStatus.READY if won else OrderStatus.INVALID
    assert (await acme_store.get_order("order-2")).status is expected


# --- nonces (RFC 8555 6.5) -------------------------------------------------------------


async def test_a_nonce_is_good_once_and_only_before_it_expires(acme_store: SqliteStore):
    """RFC 8555 6.5: a nonce is accepted once; an unknown one is refused (badNonce)."""
    expires = T0 + timedelta(minutes=30)
    await acme_store.add_nonce("n1", expires)
    await acme_store.add_nonce("n2", expires)
    assert await acme_store.consume_nonce("n1", T0) is True
    assert await acme_store.consume_nonce("n1", T0) is False
    assert await acme_store.consume_nonce("never", T0) is False
    assert await acme_store.consume_nonce("n2", expires) is False  # expired at that instant
    await acme_store.add_nonce("n2", expires)  # the expired one was deleted
    with pytest.raises(Conflict):
        await acme_store.add_nonce("n2", expires)
    with pytest.raises(ValueError, match="naive"):
        await acme_store.add_nonce("n3", expires.replace(tzinfo=None))


async def test_nonces_are_shared_and_consumed_once_across_stores(
    acme_store: SqliteStore, second_store: SqliteStore
):
    await acme_store.add_nonce("shared", T0 + timedelta(minutes=1))
    results = await asyncio.gather(
        *(store.consume_nonce("shared", T0) for store in (second_store, acme_store) * 5))
    assert sorted(results) == [False] * 9 + [True]


async def test_nonces_work_in_memory(memory_store: SqliteStore):
    await memory_store.add_nonce("n", T0 + timedelta(minutes=1))
    results = await asyncio.gather(*(memory_store.consume_nonce("n", T0) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]


async def test_expired_nonces_are_purged_every_nth_consume(
    acme_store: SqliteStore, db_file: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(acme_store, "purge_every", 3)
    for n in range(5):
        await acme_store.add_nonce(f"old-{n}", T0 + timedelta(seconds=n))
    await acme_store.add_nonce("fresh", T0 + timedelta(hours=1))
    later = T0 + timedelta(minutes=5)

    def left() -> list[str]:
        with raw(Path(nonce_path(str(db_file)))) as conn:
            return [row[0] for row in conn.execute("SELECT nonce FROM nonces ORDER BY nonce")]

    assert await acme_store.consume_nonce("unknown-1", later) is False
    assert await acme_store.consume_nonce("unknown-2", later) is False
    assert len(left()) == 6
    assert await acme_store.consume_nonce("unknown-3", later) is False  # the third: purge
    assert left() == ["fresh"]
    assert await acme_store.purge_nonces(later) == 0


async def test_nonces_skip_fsync_in_a_private_file_of_their_own(
    acme_store: SqliteStore, db_file: Path
):
    """Nonces need no durability (RFC 8555 6.5: a lost nonce costs one badNonce retry);
    the ACME state does (synchronous = FULL)."""
    async def pragma(conn: object, name: str) -> int:
        rows = await conn.execute_fetchall(f"PRAGMA {name}")  # type: ignore[attr-defined]
        return int(next(iter(rows))[0])

    connections = acme_store._connections
    assert await pragma(connections.nonces, "synchronous") == 0
    assert await pragma(connections.writer, "synchronous") == 2
    assert await pragma(connections.reader, "query_only") == 1
    assert Path(nonce_path(str(db_file))).stat().st_mode & 0o777 == 0o600


async def test_an_unreadable_nonce_file_is_started_afresh(db_file: Path):
    """After a power loss the unsynced nonce file may be damaged: nonces are disposable,
    the store opens with an empty one."""
    Path(nonce_path(str(db_file))).write_bytes(b"not a database at all" * 100)
    store = await SqliteStore.open(db_file)
    try:
        await store.add_nonce("n", T0 + timedelta(minutes=1))
        assert await store.consume_nonce("n", T0) is True
    finally:
        await store.close()


async def test_a_closed_store_refuses_acme_calls(db_file: Path):
    store = await SqliteStore.open(db_file)
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.consume_nonce("n", T0)
    with pytest.raises(StoreError, match="closed"):
        await store.get_order("o")
