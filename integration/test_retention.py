"""Retention in real `acme-ca serve` processes (issue 11, item 4): two replicas on one
PostgreSQL database, one of which holds the background lease and deletes the orders and
authorizations expired longer ago than `[retention] grace` (the default, 30 days),
certificates kept; then `acme-ca db stats --json`, a process of its own, counts what is
left.

The database is seeded through the store before the replicas start, with times on the
real clock (the replicas' own): ten orders expired 31 days ago, one of them valid with
its certificate, and ten expired 29 days ago, each with an authorization of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acme_ca.domain.models import OrderStatus
from acme_ca.store import open_store
from integration.cluster import Database, make_ca, replica_config, running_replica
from integration.conftest import free_port, run_cli, until
from tests.store.conftest import (
    DER,
    make_authorization,
    make_order,
    reservation,
    with_accounts,
)
from tests.store.pg import fresh_database

pytestmark = pytest.mark.integration

PRUNED, KEPT = 10, 10


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    async with fresh_database() as url:
        yield Database(url)


async def seed(url: str, now: datetime) -> None:
    store = await with_accounts(await open_store(url))
    try:
        for n in range(PRUNED + KEPT):
            expires = now - timedelta(days=31 if n < PRUNED else 29)
            authz = make_authorization(f"az-{n}", f"n{n}.bluerobin.local", expires=expires)
            status = OrderStatus.READY if n == 0 else OrderStatus.PENDING
            await store.create_order(make_order(f"order-{n}", [authz], expires=expires,
                                                status=status, created_at=expires), [authz])
        await store.start_issuance("order-0", reservation("5e", "order-0"))
        await store.finish_order("order-0", "5e", DER)
    finally:
        await store.close()


def test_one_replica_prunes_and_db_stats_counts_what_is_left(
        tmp_path: Path, database: Database):
    asyncio.run(seed(database.url, datetime.now(UTC)))
    ca = make_ca(tmp_path / "ca")
    configs = []
    with contextlib.ExitStack() as stack:
        replicas = []
        for index in range(2):
            port, data_dir = free_port(), tmp_path / f"r{index}"
            config = tmp_path / f"r{index}.toml"
            config.write_text(replica_config(
                port=port, data_dir=data_dir, proxy_port=free_port(), storage=database.url,
                ca=ca, http01_port=free_port(), names=[]))
            configs.append(config)
            replicas.append(stack.enter_context(
                running_replica(f"r{index}", config, data_dir, port)))

        def pruned() -> list[str]:
            return [line for r in replicas for line in r.log().splitlines()
                    if "retention: deleted" in line]

        until(lambda: bool(pruned()), "a replica to log what it pruned")
        assert len(pruned()) == 1, pruned()
        assert f"deleted {PRUNED} orders and {PRUNED} authorizations" in pruned()[0]
        assert "([retention] grace 30d)" in pruned()[0]

    result = run_cli("--config", configs[1], "db", "stats", "--json", cwd=tmp_path)
    rows = {t["name"]: t["rows"] for t in json.loads(result.stdout)["tables"]}
    assert (rows["orders"], rows["authorizations"], rows["challenges"]) == (KEPT, KEPT, KEPT)
    # The valid order's certificate stays (beside the replicas' own TLS certificates).
    assert rows["certificates"] >= 1
    assert database.query("SELECT order_id FROM certificates WHERE serial = '5e'") == [
        ("order-0",)]
