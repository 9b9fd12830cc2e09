"""What an account may get (authority/grants.py): nothing beyond the CA's policy without
an External Account Binding key; the key's profiles, domains and limit overrides with
one (RFC 8555 7.3.4); nothing new once the key is revoked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from acme_ca.authority.eab import new_key
from acme_ca.authority.grants import UNRESTRICTED, grant_for
from acme_ca.config_policy import Limit, parse_limit_setting
from acme_ca.domain.models import Account, AccountStatus
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.store import Store

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def account(eab_kid: str | None = None) -> Account:
    return Account(id="acct", status=AccountStatus.VALID, jwk="{}", thumbprint="t",
                   contact=(), terms_agreed=True, created_at=NOW, eab_kid=eab_kid)


async def test_an_account_without_a_key_is_unrestricted(store: Store) -> None:
    assert await grant_for(store, account(), NOW) is UNRESTRICTED
    assert (UNRESTRICTED.profiles, UNRESTRICTED.domains, dict(UNRESTRICTED.limits)) == (
        (), (), {})


async def test_an_account_gets_its_keys_grants(store: Store) -> None:
    key = await store.create_eab_key(new_key(
        "team", NOW, profiles=("client",), domains=("team.bluerobin.local",),
        limits=(("new_orders_per_account", "50/1h"), ("certificates_per_names", "unlimited"),
                ("pending_authorizations_per_account", "20")),
        valid_for=timedelta(days=1)))
    grant = await grant_for(store, account(key.kid), NOW)
    assert (grant.profiles, grant.domains, grant.eab_kid) == (
        ("client",), ("team.bluerobin.local",), key.kid)
    assert dict(grant.limits) == {"new_orders_per_account": Limit(50, timedelta(hours=1)),
                                  "certificates_per_names": None,
                                  "pending_authorizations_per_account": 20}
    # expiry ends the time a key may bind an account, not what the account it bound gets
    assert await grant_for(store, account(key.kid), NOW + timedelta(days=2)) == grant


async def test_a_revoked_key_grants_no_new_order(store: Store) -> None:
    key = await store.create_eab_key(new_key("team blue", NOW))
    await store.revoke_eab_key(key.kid, NOW)
    with pytest.raises(AcmeProblem) as refused:
        await grant_for(store, account(key.kid), NOW)
    assert refused.value.type is ProblemType.UNAUTHORIZED and refused.value.status == 403
    assert f"external account key {key.kid} (team blue)" in refused.value.detail
    assert "was revoked" in refused.value.detail


@pytest.mark.parametrize(("name", "text", "error"), [
    ("nope", "1/1h", "unknown limit 'nope'"),
    ("new_orders_per_account", "50", "COUNT/DURATION"),
    ("pending_authorizations_per_account", "1/1h", "a count from 1"),
    ("pending_authorizations_per_account", "0", "a count from 1"),
])
def test_overrides_are_read_as_limits_reads_them(name: str, text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_limit_setting(name, text)
    assert parse_limit_setting("pending_authorizations_per_account", "unlimited") is None
