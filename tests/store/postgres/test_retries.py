"""Which failures are tried again on another connection (``base.py``): a read whenever
its connection broke; a write only when asyncpg provably sent nothing, since a write
the server applied and then tried again answers as if it had lost (its own nonce
"already used", its own compare-and-set a Conflict). A programming error that asyncpg
reports is neither an outage nor a broken connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from acme_ca.domain.models import ChallengeStatus
from acme_ca.errors import StoreError, StoreUnavailable
from acme_ca.store.postgres import PostgresStore
from tests.relay import Relay
from tests.store.conftest import ACCOUNT, T0, make_authorization, make_order, with_accounts
from tests.store.pg import through

LATER = T0.replace(year=2100)


def garbled_once(tag: bytes) -> Callable[[bytes], bytes]:
    """Rewrites the first server reply whose CommandComplete tag is ``tag``: a DataRow
    of two columns before its first one, which asyncpg cannot read (``ProtocolError``).
    The statement ran: the server sends its reply once it has committed it."""
    done = False

    def tamper(data: bytes) -> bytes:
        nonlocal done
        if done or tag not in data:
            return data
        at = 0
        while at + 5 <= len(data):  # messages: a type byte, then a length that counts itself
            if data[at:at + 1] == b"D":
                done = True
                bogus = b"\x00\x02" + b"\xff\xff\xff\xff" * 2  # two NULL columns
                row = b"D" + (4 + len(bogus)).to_bytes(4, "big") + bogus
                return data[:at] + row + data[at:]
            at += 1 + int.from_bytes(data[at + 1:at + 5], "big")
        return data

    return tamper


@pytest.fixture
async def store(pg_url: str, relay: Relay) -> AsyncIterator[PostgresStore]:
    """A store that reaches its database through ``relay``."""
    opened = await PostgresStore.open(through(pg_url, relay), pool_size=2, timeout=2.0)
    try:
        yield await with_accounts(opened)
    finally:
        await opened.close()


async def test_a_write_whose_reply_cannot_be_read_is_not_tried_again(
    store: PostgresStore, relay: Relay
):
    """RFC 8555 6.5: a nonce is consumed once. Its DELETE ran and its reply came back
    garbled: the outcome is unknown to the caller (StoreUnavailable), and the nonce is
    gone; tried again, the call would have said False, "already used", of its own."""
    await store.add_nonce("n1", LATER)
    relay.tamper = garbled_once(b"DELETE 1")
    with pytest.raises(StoreUnavailable):
        await store.consume_nonce("n1", T0)
    assert await store.consume_nonce("n1", T0) is False  # it was consumed, once

    authz = make_authorization("az")
    await store.create_order(make_order("o", [authz]), [authz])
    relay.tamper = garbled_once(b"UPDATE 1")
    with pytest.raises(StoreUnavailable):
        await store.update_challenge("az-http-01", expected=ChallengeStatus.PENDING,
                                     status=ChallengeStatus.PROCESSING)
    assert (await store.get_challenge("az-http-01")).status is ChallengeStatus.PROCESSING


async def test_a_read_whose_reply_cannot_be_read_is_tried_again(
    store: PostgresStore, relay: Relay
):
    tamper = relay.tamper = garbled_once(b"SELECT 1")
    assert (await store.get_account(ACCOUNT)).id == ACCOUNT
    assert tamper(b"SELECT 1") == b"SELECT 1", "no reply was garbled"


async def test_a_programming_error_is_a_store_error_and_keeps_the_connections(
    store: PostgresStore,
):
    """asyncpg says InterfaceError for a statement given the wrong number of arguments:
    a bug to fix, not an outage to retry later, and the connection is sound."""
    await asyncio.gather(*(store._read("SELECT pg_sleep(0.05)") for _ in range(2)))
    before = await backends(store)
    with pytest.raises(StoreError, match="expects 1 argument") as caught:
        await store._read("SELECT $1::int")
    assert not isinstance(caught.value, StoreUnavailable)
    with pytest.raises(StoreError, match="expects 1 argument") as caught:
        await store._write("SELECT $1::int")
    assert not isinstance(caught.value, StoreUnavailable)
    assert await backends(store) == before


async def backends(store: PostgresStore) -> set[int]:
    """The server processes behind the store's connections, both busy at once."""
    rows = await asyncio.gather(*(store._read("SELECT pg_backend_pid(), pg_sleep(0.05)")
                                  for _ in range(2)))
    return {row[0][0] for row in rows}


async def test_a_write_whose_connection_breaks_as_it_is_given_back_has_happened(
    store: PostgresStore, relay: Relay
):
    """The pool resets a connection as it takes it back (asyncpg's ``reset``), after the
    work committed. A failure there is the connection's, not the work's: the order was
    created, so the caller is told so, rather than running the transaction again and
    hearing Conflict for its own order (a 500 a replica answered under
    pg_terminate_backend, seen in integration/test_replicas.py)."""

    def break_on_reset(data: bytes) -> bytes:
        if b"RESET" in data:  # the reply to the pool's reset: the link goes instead
            relay.sever()
            return b""
        return data

    authz = make_authorization("az")
    relay.tamper = break_on_reset
    order = await store.create_order(make_order("o", [authz]), [authz])
    relay.tamper = lambda data: data
    await relay.mend()
    assert (await store.get_order("o")) == order
