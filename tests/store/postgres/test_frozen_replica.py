"""A replica frozen inside a transaction (SIGSTOP here; a paused VM, a swap storm) holds
its row locks only until the server ends its idle session
(``idle_in_transaction_session_timeout``, three times the timeout); meanwhile the
others' statements on those rows fail at once with StoreUnavailable (``lock_timeout``),
and after it they succeed. Without the two settings the others failed on every try for
as long as the freeze lasted (issue 10: "never a request that hangs")."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from acme_ca.domain.models import ChallengeStatus, OrderStatus
from acme_ca.errors import StoreUnavailable
from acme_ca.store.postgres import PostgresStore
from tests.store.conftest import PROBLEM, T0, two_name_order, with_accounts

TIMEOUT = 0.5  # seconds: the frozen session ends after 1.5 s, a lock wait after 0.25 s
ROOT = Path(__file__).resolve().parents[3]

# A replica that stops itself inside record_validation, once it has locked the
# challenge az-a-http-01, its authorization and the orders order-1 and order-2.
FROZEN_REPLICA = """
import asyncio, os, signal, sys
from acme_ca.domain import states
from acme_ca.store.postgres import PostgresStore
from tests.store.conftest import T0

decide = states.order_change
def frozen(*args):
    os.kill(os.getpid(), signal.SIGSTOP)
    return decide(*args)
states.order_change = frozen

async def main():
    store = await PostgresStore.open(sys.argv[1], pool_size=1, timeout=float(sys.argv[2]))
    await store.record_validation("az-a-http-01", valid=True, error=None, validated_at=T0,
                                  authorization_expires=None)
asyncio.run(main())
"""


@contextmanager
def frozen_replica(url: str) -> Iterator[subprocess.Popen[bytes]]:
    """FROZEN_REPLICA running on ``url``; killed on exit."""
    child = subprocess.Popen([sys.executable, "-c", FROZEN_REPLICA, url, str(TIMEOUT)],
                             cwd=ROOT)
    try:
        yield child
    finally:
        child.kill()
        child.wait()


async def stopped(child: subprocess.Popen[bytes]) -> None:
    stat = Path(f"/proc/{child.pid}/stat")
    for _ in range(300):
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        assert child.poll() is None, "the replica ended before it froze"
        await asyncio.sleep(0.05)
    pytest.fail("the replica did not freeze within 15 s")


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(pg_url, pool_size=2, timeout=TIMEOUT)
    try:
        yield await with_accounts(opened)
    finally:
        await opened.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc and SIGSTOP")
async def test_a_frozen_replica_loses_its_locks_and_the_others_go_on(
    store: PostgresStore, pg_url: str
):
    await two_name_order(store)
    loop = asyncio.get_running_loop()
    with frozen_replica(pg_url) as child:
        await stopped(child)
        frozen_at = loop.time()

        with pytest.raises(StoreUnavailable, match="locked by another session"):
            await store.update_order_status("order-1", expected=OrderStatus.PENDING,
                                            status=OrderStatus.INVALID, error=PROBLEM)
        # the message is the server's lock_timeout (0.25 s), not the client's (0.5 s);
        # the whole call, on a busy machine, well before the freeze ends (1.5 s)
        assert loop.time() - frozen_at < 2 * TIMEOUT

        while True:  # az-b's validation needs order-1, locked by the frozen replica
            try:
                await store.record_validation("az-b-http-01", valid=True, error=None,
                                              validated_at=T0, authorization_expires=None)
                break
            except StoreUnavailable:
                assert loop.time() - frozen_at < 10 * TIMEOUT, "the locks were never released"
                await asyncio.sleep(0.1)
        assert loop.time() - frozen_at >= 2 * TIMEOUT  # once the session timed out
        assert child.poll() is None  # the replica is still frozen: the server acted
    # Its transaction was rolled back with its session.
    assert (await store.get_challenge("az-a-http-01")).status is ChallengeStatus.PROCESSING
    assert (await store.get_order("order-1")).status is OrderStatus.PENDING
