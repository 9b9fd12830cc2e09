"""Builders of ACME values and SQLite stores for the store tests.

Fixture names differ from the ones tests/store/test_sqlite.py declares for itself
(``db_path``, ``store``), so neither file shadows the other by accident.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acme_ca.clock import FakeClock
from acme_ca.domain.models import (
    Account,
    AccountStatus,
    Authorization,
    AuthorizationStatus,
    CertificateRecord,
    Challenge,
    Identifier,
    Order,
    OrderStatus,
)
from acme_ca.store import SqliteStore
from acme_ca.store.sqlite.connection import Connection

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
ACCOUNT = "acct-1"
OTHER = "acct-2"
DER = b"\x30\x82\x01\x0a" + bytes(range(64))
PROBLEM = '{"type":"urn:ietf:params:acme:error:unauthorized","detail":"wrong token"}'


def make_account(account_id: str = ACCOUNT, **changes: object) -> Account:
    account = Account(
        id=account_id,
        status=AccountStatus.VALID,
        jwk='{"kty":"EC","crv":"P-256","x":"' + account_id + '","y":"y"}',
        thumbprint=f"thumb-{account_id}",
        contact=("mailto:admin@example.test",),
        terms_agreed=True,
        created_at=T0,
    )
    return replace(account, **changes)  # type: ignore[arg-type]


def make_authorization(
    authz_id: str,
    value: str = "www.example.test",
    *,
    account_id: str = ACCOUNT,
    types: Sequence[str] = ("http-01",),
    **changes: object,
) -> Authorization:
    challenges = tuple(
        Challenge(id=f"{authz_id}-{kind}", authorization_id=authz_id, type=kind,
                  token=f"token-{authz_id}-{kind}")
        for kind in types
    )
    authz = Authorization(
        id=authz_id,
        account_id=account_id,
        identifier=Identifier("dns", value),
        status=AuthorizationStatus.PENDING,
        expires=T0 + timedelta(days=7),
        created_at=T0,
        challenges=challenges,
    )
    return replace(authz, **changes)  # type: ignore[arg-type]


def make_order(
    order_id: str,
    authorizations: Sequence[Authorization],
    *,
    account_id: str = ACCOUNT,
    **changes: object,
) -> Order:
    order = Order(
        id=order_id,
        account_id=account_id,
        status=OrderStatus.PENDING,
        identifiers=tuple(authz.identifier for authz in authorizations),
        authorization_ids=tuple(authz.id for authz in authorizations),
        expires=T0 + timedelta(days=7),
        created_at=T0,
    )
    return replace(order, **changes)  # type: ignore[arg-type]


def reservation(serial: str, order_id: str) -> CertificateRecord:
    """The certificate record finalize reserves for `order_id` before signing."""
    return CertificateRecord(
        serial=serial, issuer="ab" * 32, names=("www.example.test",), profile="server",
        not_before=T0, not_after=T0 + timedelta(days=90), created_at=T0,
        account_id=ACCOUNT, order_id=order_id)


async def with_accounts(store: SqliteStore) -> SqliteStore:
    """Orders and authorizations reference accounts: create the two the tests use."""
    await store.create_account(make_account(ACCOUNT))
    await store.create_account(make_account(OTHER))
    return store


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "acme.db"


@pytest.fixture
async def acme_store(db_file: Path) -> AsyncIterator[SqliteStore]:
    """A store on a file, with the accounts ACCOUNT and OTHER."""
    opened = await SqliteStore.open(db_file, clock=FakeClock(T0))
    try:
        yield await with_accounts(opened)
    finally:
        await opened.close()


@pytest.fixture
async def second_store(acme_store: SqliteStore, db_file: Path) -> AsyncIterator[SqliteStore]:
    """Another store on the same file: another process, as far as SQLite can tell."""
    opened = await SqliteStore.open(db_file)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def memory_store() -> AsyncIterator[SqliteStore]:
    """A private in-memory store, with the accounts ACCOUNT and OTHER."""
    opened = await SqliteStore.open(":memory:")
    try:
        yield await with_accounts(opened)
    finally:
        await opened.close()


def waits_in_thread(conn: Connection, also: Callable[[str], None] | None = None
                    ) -> asyncio.Event:
    """An event set once `conn` runs a statement other than COMMIT off the event loop's
    thread: a call that met another process's lock and now waits for it in the
    connection's thread (Connection.without_sleeping). `also`: a trace callback to keep
    (SQLite keeps one per connection).

    Call it before the connection's thread has anything to do; the callback stays until
    the connection closes. Setting a trace callback while the thread runs a statement
    deadlocks: the setter waits for the connection's mutex holding the GIL, which the
    thread's callback needs."""
    loop = asyncio.get_running_loop()
    event = asyncio.Event()
    loop_thread = threading.get_ident()

    def trace(sql: str) -> None:
        if also is not None:
            also(sql)
        if threading.get_ident() != loop_thread and sql.strip().upper() != "COMMIT":
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(event.set)

    conn._raw.set_trace_callback(trace)
    return event


async def thread_idle(conn: Connection) -> None:
    """Return once every call handed to `conn`'s thread has ended: its one thread runs
    them in order, so a no-op handed to it now runs after all of them."""
    await conn.in_thread(lambda raw: None)
