"""Accounts (RFC 8555 7.1.2, 7.3): one key, one account; status and key change by
compare-and-set."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta, timezone

import pytest

from acme_ca.domain.models import AccountStatus
from acme_ca.errors import Conflict, NotFound
from acme_ca.store import Store
from tests.store.conftest import ACCOUNT, OTHER, T0, make_account


async def test_account_round_trip_in_utc(store: Store):
    plus_two = timezone(timedelta(hours=2))
    account = make_account("acct-3", contact=(), terms_agreed=False,
                           created_at=T0.astimezone(plus_two))
    created = await store.create_account(account)
    fetched = await store.get_account("acct-3")
    assert created == fetched == replace(account, created_at=T0)
    assert fetched.created_at.tzinfo is UTC and fetched.terms_agreed is False
    assert await store.find_account_by_thumbprint("thumb-acct-3") == fetched
    assert (await store.get_account(ACCOUNT)).contact == ("mailto:admin@example.test",)
    with pytest.raises(NotFound):
        await store.get_account("nobody")
    with pytest.raises(NotFound):
        await store.find_account_by_thumbprint("thumb-nobody")
    with pytest.raises(ValueError, match="naive"):
        await store.create_account(make_account("acct-4", created_at=T0.replace(tzinfo=None)))


async def test_one_key_one_account(store: Store):
    """RFC 8555 7.3: a second newAccount with the same key finds the first account."""
    with pytest.raises(Conflict, match="thumb-acct-1"):
        await store.create_account(make_account("acct-9", thumbprint="thumb-acct-1"))
    with pytest.raises(Conflict):
        await store.create_account(make_account(ACCOUNT, thumbprint="thumb-new"))
    assert (await store.find_account_by_thumbprint("thumb-acct-1")).id == ACCOUNT
    with pytest.raises(NotFound):
        await store.get_account("acct-9")


async def test_update_account_is_a_compare_and_set_on_status(store: Store):
    """RFC 8555 7.3.2 (contact update) and 7.3.6 (deactivation, final)."""
    valid = AccountStatus.VALID
    updated = await store.update_account(ACCOUNT, expected_status=valid,
                                         contact=["mailto:new@example.test"])
    assert updated.contact == ("mailto:new@example.test",) and updated.status is valid
    cleared = await store.update_account(ACCOUNT, expected_status=valid, contact=[])
    assert cleared.contact == ()
    gone = await store.update_account(ACCOUNT, expected_status=valid,
                                      status=AccountStatus.DEACTIVATED)
    assert (gone.status, gone.contact) == (AccountStatus.DEACTIVATED, ())
    with pytest.raises(Conflict, match="deactivated, not valid"):
        await store.update_account(ACCOUNT, expected_status=valid, contact=["mailto:x@y.z"])
    assert await store.get_account(ACCOUNT) == gone
    with pytest.raises(NotFound):
        await store.update_account("nobody", expected_status=valid, contact=[])


async def test_key_change_moves_the_thumbprint(store: Store):
    """RFC 8555 7.3.5: the account is found by its new key only."""
    changed = await store.change_account_key(
        ACCOUNT, old_thumbprint="thumb-acct-1", jwk='{"new":1}', thumbprint="thumb-new")
    assert (changed.jwk, changed.thumbprint) == ('{"new":1}', "thumb-new")
    assert await store.find_account_by_thumbprint("thumb-new") == changed
    with pytest.raises(NotFound):
        await store.find_account_by_thumbprint("thumb-acct-1")


async def test_key_change_conflicts(store: Store):
    """RFC 8555 7.3.5: a key another account holds is refused (409 at the API)."""
    before = await store.get_account(ACCOUNT)
    with pytest.raises(Conflict, match="another account"):
        await store.change_account_key(
            ACCOUNT, old_thumbprint="thumb-acct-1", jwk="{}", thumbprint="thumb-acct-2")
    with pytest.raises(Conflict, match="changed meanwhile"):
        await store.change_account_key(
            ACCOUNT, old_thumbprint="thumb-stale", jwk="{}", thumbprint="thumb-new")
    assert await store.get_account(ACCOUNT) == before
    await store.update_account(OTHER, expected_status=AccountStatus.VALID,
                               status=AccountStatus.DEACTIVATED)
    with pytest.raises(Conflict, match="deactivated, not valid"):
        await store.change_account_key(
            OTHER, old_thumbprint="thumb-acct-2", jwk="{}", thumbprint="thumb-new")
    with pytest.raises(NotFound):
        await store.change_account_key(
            "nobody", old_thumbprint="t", jwk="{}", thumbprint="thumb-new")
