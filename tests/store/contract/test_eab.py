"""External Account Binding keys (RFC 8555 7.3.4): created once, read with the account
they bound, revoked once and never deleted; ``create_account`` binds a key in the
account's own transaction, and one key binds one account, however the accounts race."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from acme_ca.domain.models import EabKey
from acme_ca.errors import Conflict, NotFound
from acme_ca.store import Store
from tests.store.conftest import T0, make_account
from tests.store.contract.conftest import Backend


def make_key(kid: str = "kid-1", **changes: object) -> EabKey:
    key = EabKey(kid=kid, label=f"team {kid}", hmac_key=bytes(range(32)), created_at=T0,
                 profiles=("server", "client"), domains=("team.example.test",),
                 limits=(("new_orders_per_account", "10/1h"),),
                 expires=T0 + timedelta(days=30))
    return replace(key, **changes)  # type: ignore[arg-type]


async def test_key_round_trip(store: Store):
    created = await store.create_eab_key(make_key())
    assert created == make_key() == await store.get_eab_key("kid-1")
    bare = await store.create_eab_key(make_key("kid-0", profiles=(), domains=(), limits=(),
                                               expires=None, created_at=T0))
    assert (bare.profiles, bare.domains, bare.limits, bare.expires) == ((), (), (), None)
    assert [k.kid for k in await store.list_eab_keys()] == ["kid-0", "kid-1"]
    with pytest.raises(Conflict, match="kid-1 already exists"):
        await store.create_eab_key(make_key(label="again"))
    with pytest.raises(NotFound, match="no external account key nobody"):
        await store.get_eab_key("nobody")
    with pytest.raises(NotFound):
        await store.get_eab_key("nul\x00")
    with pytest.raises(ValueError, match="neither bound nor revoked"):
        await store.create_eab_key(make_key("kid-2", revoked_at=T0))


async def test_revoke_is_a_compare_and_set(store: Store):
    await store.create_eab_key(make_key())
    revoked = await store.revoke_eab_key("kid-1", T0 + timedelta(hours=1))
    assert revoked.revoked_at == T0 + timedelta(hours=1)
    assert await store.get_eab_key("kid-1") == revoked  # kept, never deleted
    with pytest.raises(Conflict, match="already revoked"):
        await store.revoke_eab_key("kid-1", T0 + timedelta(hours=2))
    with pytest.raises(NotFound):
        await store.revoke_eab_key("nobody", T0)


async def test_create_account_binds_the_key(store: Store):
    """7.3.4: the account is created bound to the key; the key names its account."""
    await store.create_eab_key(make_key())
    account = await store.create_account(make_account("acct-eab", eab_kid="kid-1"))
    assert account.eab_kid == "kid-1"
    assert (await store.get_account("acct-eab")).eab_kid == "kid-1"
    assert (await store.find_account_by_thumbprint("thumb-acct-eab")).eab_kid == "kid-1"
    assert (await store.get_eab_key("kid-1")).account_id == "acct-eab"
    assert [k.account_id for k in await store.list_eab_keys()] == ["acct-eab"]
    assert (await store.get_account("acct-1")).eab_kid is None


@pytest.mark.parametrize("state", ["bound", "revoked", "expired", "absent"])
async def test_a_key_that_cannot_bind_creates_no_account(store: Store, state: str):
    await store.create_eab_key(make_key())
    at = T0
    if state == "bound":
        await store.create_account(make_account("acct-first", eab_kid="kid-1"))
    elif state == "revoked":
        await store.revoke_eab_key("kid-1", T0)
    elif state == "expired":
        at = T0 + timedelta(days=30)  # expires is the first instant it no longer binds
    kid = "nobody" if state == "absent" else "kid-1"
    error = NotFound if state == "absent" else Conflict
    with pytest.raises(error, match=state if state != "absent" else "no external"):
        await store.create_account(make_account("acct-late", eab_kid=kid, created_at=at))
    with pytest.raises(NotFound):
        await store.get_account("acct-late")
    with pytest.raises(NotFound):
        await store.find_account_by_thumbprint("thumb-acct-late")


async def test_two_accounts_racing_for_one_key_bind_it_once(backend: Backend, store: Store,
                                                             other: Store):
    """Two newAccount requests with different account keys and one EAB key, through
    two stores (two processes or replicas): exactly one account, bound to the key."""
    for round_ in range(5):
        kid = f"kid-race-{round_}"
        await store.create_eab_key(make_key(kid))
        results = await asyncio.gather(
            store.create_account(make_account(f"a-{round_}", eab_kid=kid)),
            other.create_account(make_account(f"b-{round_}", eab_kid=kid)),
            return_exceptions=True)
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1 and len(lost) == 1, results
        assert isinstance(lost[0], Conflict) and "already bound" in str(lost[0])
        assert (await other.get_eab_key(kid)).account_id == won[0].id
