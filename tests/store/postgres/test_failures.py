"""When the database fails: StoreUnavailable (retry later), never a hang, never the URL
in a message; and the store recovers by itself (issue 10: "a database outage gives
clients 503 ..., never a crash or a request that hangs; replicas reconnect by
themselves")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from acme_ca.domain.models import AccountStatus
from acme_ca.errors import StoreError, StoreUnavailable
from acme_ca.store import open_store
from acme_ca.store.postgres import PostgresStore
from tests.store.conftest import ACCOUNT, make_account, with_accounts
from tests.store.pg import terminate_connections
from tests.store.postgres.server import free_port

SECRET = "hunter2"


async def test_an_unreachable_server_is_unavailable_and_its_url_is_not_repeated():
    port = free_port()  # nothing listens there: connection refused
    url = f"postgresql://acme:{SECRET}@127.0.0.1:{port}/acme"
    with pytest.raises(StoreUnavailable) as caught:
        await open_store(url)
    message = str(caught.value)
    assert SECRET not in message and "acme:" not in message
    assert f"127.0.0.1:{port}/acme" in message and "refused" in message


async def test_a_server_that_never_answers_is_unavailable_after_the_timeout():
    accepted: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _, writer: accepted.append(writer),
                                        "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(StoreUnavailable, match=r"no answer within 0\.5 s"):
            await PostgresStore.open(f"postgresql://acme@127.0.0.1:{port}/acme", timeout=0.5)
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert loop.time() - started < 5


async def test_a_database_that_does_not_exist_is_a_store_error(pg_url: str):
    """The server answers and refuses: retrying will not help, so not StoreUnavailable."""
    missing = urlsplit(pg_url)._replace(path="/no_such_database_here").geturl()
    with pytest.raises(StoreError) as caught:
        await PostgresStore.open(missing)
    assert not isinstance(caught.value, StoreUnavailable)
    assert "no_such_database_here" in str(caught.value)


async def test_a_missing_root_certificate_is_a_store_error(pg_url: str, tmp_path):
    """A file the URL names cannot be read: a configuration to fix, not an outage."""
    url = f"{pg_url}?sslmode=verify-full&sslrootcert={tmp_path / 'missing.pem'}"
    with pytest.raises(StoreError, match=r"cannot read .*: No such file") as caught:
        await open_store(url)
    assert not isinstance(caught.value, StoreUnavailable)


async def test_a_root_certificate_that_is_not_one_is_a_store_error(pg_url: str, tmp_path):
    """A configuration to fix (sslrootcert names the wrong file), not an outage."""
    bogus = tmp_path / "root.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(StoreError, match=r"TLS: .*no certificate") as caught:
        await open_store(f"{pg_url}?sslmode=verify-full&sslrootcert={bogus}")
    assert not isinstance(caught.value, StoreUnavailable)


async def test_a_unix_socket_whose_server_is_stopped_is_unavailable(tmp_path):
    """The server removes its socket file when it stops: an outage (retry later), as
    the same server stopped behind TCP is, not a file of the configuration to fix."""
    with pytest.raises(StoreUnavailable, match="Unix socket"):
        await open_store(f"postgresql:///acme?host={tmp_path}")


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(pg_url, pool_size=4, timeout=0.5)
    try:
        yield await with_accounts(opened)
    finally:
        await opened.close()


async def test_the_store_reconnects_after_its_connections_are_terminated(store, pg_url):
    """pg_terminate_backend on every connection (a failover, an operator): the pool
    replaces them, and neither reads nor writes need the store to be reopened."""
    await asyncio.gather(*(store.get_account(ACCOUNT) for _ in range(8)))  # several open
    assert await terminate_connections(pg_url) >= 1
    assert (await store.get_account(ACCOUNT)).id == ACCOUNT  # a read is tried again
    for i in range(10):
        await store.create_account(make_account(f"after-{i}"))
        await store.update_account(f"after-{i}", expected_status=AccountStatus.VALID,
                                   contact=[f"mailto:{i}@example.test"])
    assert (await store.get_account("after-9")).contact == ("mailto:9@example.test",)


async def test_a_write_that_meets_a_terminated_connection_fails_once_at_most(store, pg_url):
    """A write is not tried again when its connection broke as it was sent (it may have
    happened): that one says StoreUnavailable, and the pool renews every connection,
    so the writes after it succeed."""
    await asyncio.gather(*(store.get_account(ACCOUNT) for _ in range(8)))
    assert await terminate_connections(pg_url) >= 1
    unavailable = 0
    for i in range(10):
        try:
            await store.add_nonce(f"after-kill-{i}", make_account().created_at)
        except StoreUnavailable:
            unavailable += 1
    assert unavailable <= 1
    await store.add_nonce("last", make_account().created_at)


@pytest.fixture
async def locked_account(pg_url: str) -> AsyncIterator[None]:
    """Another session holds ACCOUNT's row lock until the test ends."""
    conn = await asyncpg.connect(pg_url)
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("SELECT * FROM accounts WHERE id = $1 FOR UPDATE", ACCOUNT)
    try:
        yield
    finally:
        await transaction.rollback()
        await conn.close()


async def test_a_statement_that_waits_too_long_for_a_lock_is_unavailable(
    store, locked_account
):
    """lock_timeout (half the timeout): the server ends the wait, before the client's
    own timeout; the connection and the store stay usable."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StoreUnavailable, match="locked by another session"):
        await store.update_account(ACCOUNT, expected_status=AccountStatus.VALID, contact=[])
    # The message is the server's lock_timeout (0.25 s), not the client's timeout (0.5 s,
    # per statement); the call's whole time, its other statements included, is only
    # bounded here (no hang, no retry), with a second a busy machine may add.
    assert loop.time() - started < 0.5 + 1.0
    assert (await store.get_account(ACCOUNT)).contact == make_account().contact


async def test_a_statement_that_runs_too_long_is_unavailable(store):
    """command_timeout: the statement is cancelled on the server; the store stays usable."""
    with pytest.raises(StoreUnavailable, match=r"no answer within 0\.5 s"):
        await store._read("SELECT pg_sleep(5)")
    assert (await store.get_account(ACCOUNT)).id == ACCOUNT


async def test_waiting_too_long_for_a_free_connection_is_unavailable(store):
    """Every connection of the pool busy: the wait ends after the timeout."""
    held = [await store._pool.acquire() for _ in range(4)]
    try:
        with pytest.raises(StoreUnavailable, match=r"no answer within 0\.5 s"):
            await store.get_account(ACCOUNT)
    finally:
        for conn in held:
            await store._pool.release(conn)
    assert (await store.get_account(ACCOUNT)).id == ACCOUNT


async def test_a_closed_store_refuses_every_call(store):
    await store.close()
    await store.close()  # twice is harmless
    with pytest.raises(StoreError, match="closed"):
        await store.get_account(ACCOUNT)
