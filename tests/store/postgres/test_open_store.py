"""``open_store`` picks the PostgreSQL backend for postgresql:// and postgres:// URLs."""

from __future__ import annotations

import sys

import pytest

from acme_ca.errors import ConfigError
from acme_ca.store import open_store
from acme_ca.store.migrations import load_migrations
from acme_ca.store.postgres import PostgresStore


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "POSTGRESQL"])
async def test_postgres_urls_open_a_postgres_store_with_its_pool_size(pg_url: str, scheme: str):
    url = scheme + pg_url.removeprefix("postgresql")
    store = await open_store(url, pool_size=3)
    try:
        assert isinstance(store, PostgresStore)
        assert store._pool.get_max_size() == 3
        assert await store.schema_version() == len(load_migrations("postgres"))
    finally:
        await store.close()


async def test_without_asyncpg_the_message_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setitem(sys.modules, "acme_ca.store.postgres", None)  # import fails
    with pytest.raises(ConfigError, match=r"install acme-ca\[postgres\]") as caught:
        await open_store("postgresql://acme:hunter2@db.example.test/acme")
    assert "hunter2" not in str(caught.value)
