"""Against a PostgreSQL server of the test's own (``server.py``): TLS to the database as
the deployment guide sets it up (``hostssl`` only, ``sslmode=verify-full``), and a
server that stops and comes back while a store is open (issue 10: "replicas
reconnect by themselves")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from acme_ca.errors import StoreError, StoreUnavailable
from acme_ca.store import open_store
from acme_ca.store.postgres import PostgresStore
from tests.store.conftest import ACCOUNT, make_account
from tests.store.postgres.server import PrivateServer


@pytest.fixture(scope="module")
def server() -> Iterator[PrivateServer]:
    started = PrivateServer()
    try:
        started.start()
        yield started
    finally:
        started.remove()


async def test_verify_full_with_the_servers_ca_connects_over_tls(server: PrivateServer):
    store = await open_store(server.url(f"?sslmode=verify-full&sslrootcert={server.ca}"))
    try:
        assert isinstance(store, PostgresStore)
        await store.create_account(make_account(f"tls-{id(store)}"))
        conn = await store._pool.acquire()
        try:
            assert await conn.fetchval(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
        finally:
            await store._pool.release(conn)
    finally:
        await store.close()


async def test_verify_full_with_another_ca_is_refused_clearly(server: PrivateServer):
    url = server.url(f"?sslmode=verify-full&sslrootcert={server.other_ca}")
    with pytest.raises(StoreError, match="TLS certificate is not trusted") as caught:
        await open_store(url)
    assert not isinstance(caught.value, StoreUnavailable)  # trying again will not help
    message = str(caught.value)
    assert f"127.0.0.1:{server.port}/postgres" in message
    assert str(server.other_ca) not in message and "sslmode=" not in message


async def test_a_connection_without_tls_is_refused_by_hostssl(server: PrivateServer):
    with pytest.raises(StoreError, match=r"pg_hba\.conf") as caught:
        await open_store(server.url("?sslmode=disable"))
    assert not isinstance(caught.value, StoreUnavailable)


async def test_a_store_survives_its_server_stopping_and_coming_back(server: PrivateServer):
    """While the server is down every call is StoreUnavailable (no hang, no crash);
    once it is back the same store works again, without being reopened."""
    store = await PostgresStore.open(server.url("?sslmode=require"), pool_size=3, timeout=2)
    try:
        await store.create_account(make_account(ACCOUNT + "-restart"))
        server.stop()
        try:
            for _ in range(3):
                with pytest.raises(StoreUnavailable):
                    await store.get_account(ACCOUNT + "-restart")
                with pytest.raises(StoreUnavailable):
                    await store.add_nonce("while-down", make_account().created_at)
        finally:
            server.start()
        assert (await store.get_account(ACCOUNT + "-restart")).id == ACCOUNT + "-restart"
        await store.create_account(make_account(ACCOUNT + "-after"))
    finally:
        await store.close()
