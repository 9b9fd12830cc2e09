"""What every store does whatever the entity: it implements the whole ``Store`` Protocol,
opens a fresh database at the newest schema version even when several processes open it
at once, refuses calls once closed, and leaves a cancelled write all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import inspect

import pytest

from acme_ca.domain.models import CertificateStatus
from acme_ca.errors import NotFound, StoreError
from acme_ca.store import Store
from acme_ca.store.cluster import LeaseStore, NonceStore
from acme_ca.store.policy import EabStore, LimitStore
from acme_ca.store.reads import ReadStore
from acme_ca.store.retention import RetentionStore
from acme_ca.store.revocation import RevocationStore
from acme_ca.store.writes import WriteStore
from tests.store.conftest import ACCOUNT, DER, T0, make_record, two_name_order
from tests.store.contract.conftest import Backend

PROTOCOLS = (ReadStore, WriteStore, NonceStore, LeaseStore, EabStore, LimitStore,
             RetentionStore, RevocationStore)


def test_store_includes_every_protocol():
    for protocol in PROTOCOLS:
        assert protocol in Store.__mro__, protocol


async def test_the_backend_implements_every_protocol_method_with_the_same_signature(
    store: Store,
):
    members = {
        name: member
        for protocol in (*PROTOCOLS, Store)
        for name, member in vars(protocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert {"list_certificates", "record_validation", "hold_lease", "close", "publish_crl",
            "mark_renew_early_issued_before", "spend_limit"} <= set(members)
    for name, member in members.items():
        implementation = getattr(type(store), name)
        assert inspect.iscoroutinefunction(implementation), name
        assert inspect.signature(implementation) == inspect.signature(member), name


async def test_stores_opening_a_fresh_database_at_once_all_reach_the_newest_version(
    backend: Backend,
):
    """Replicas that start together migrate the database once, under a lock: each of
    them opens, at the newest version."""
    results = await asyncio.gather(*(backend.open() for _ in range(4)),
                                   return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], results
    opened = [r for r in results if not isinstance(r, BaseException)]
    versions = [await each.schema_version() for each in opened]
    assert versions == [backend.newest_version()] * 4


async def test_a_closed_store_refuses_calls(store: Store):
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.get_certificate("1a2b3c")
    with pytest.raises(StoreError, match="closed"):
        await store.consume_nonce("n", T0)
    with pytest.raises(StoreError, match="closed"):
        await store.get_order("o")


@pytest.mark.parametrize("steps", range(8))
async def test_a_cancelled_write_is_all_or_nothing_and_leaves_no_transaction_open(
    store: Store, steps: int
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
    await store.reserve_serial(make_record("0d"))  # a transaction left open would block it
    assert (await store.get_certificate("0d")).status is CertificateStatus.RESERVED


async def test_an_id_no_row_can_have_is_unknown_like_any_other(store: Store):
    """An id or key with a NUL character (from a URL: /acme/acct/%00 as a JWS kid,
    /acme/order/%00), which PostgreSQL text cannot even hold, is one the store does not
    know: ``NotFound``, or nothing listed, as for any unknown id (RFC 8555 7.3.1, 7.4:
    accountDoesNotExist, 404), never another ``StoreError`` (a 500)."""
    await two_name_order(store)
    lookups = (store.get_account, store.find_account_by_thumbprint, store.get_order,
               store.get_authorization, store.get_challenge, store.get_certificate)
    for lookup in lookups:
        for key in ("\x00", "order-1\x00", "az-a\x00"):
            with pytest.raises(NotFound):
                await lookup(key)
    assert await store.list_account_orders(f"{ACCOUNT}\x00", limit=10) == []
    assert await store.list_account_orders(ACCOUNT, limit=10, after="order-1\x00") == []
    assert await store.orders_for_authorization("az-a\x00") == []
    with pytest.raises(NotFound):
        await store.list_certificates(after_serial="\x00")
