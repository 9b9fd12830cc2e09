"""RateLimits (acme_ca/authority/limits.py) on a real store: [limits] and the per-EAB-key
overrides a Grant carries, ARI's exemption, refunds, the bucket keys, and buckets shared
by replicas (RFC 8555 6.6 rateLimited)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from acme_ca.authority.grants import UNRESTRICTED, Grant
from acme_ca.authority.limits import (
    RateLimits,
    address_key,
    names_key,
    retry_after,
)
from acme_ca.clock import FakeClock
from acme_ca.config_policy import Limit, LimitsConfig
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.store import Store
from tests.store.conftest import ACCOUNT, make_account, with_accounts

HOUR = timedelta(hours=1)
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
NAMES = (Identifier("dns", "a.bluerobin.local"), Identifier("dns", "b.bluerobin.local"))
ONE_AN_HOUR = Limit(1, HOUR)


async def orders_allowed(limits: RateLimits, grant: Grant, n: int, *,
                         exempt: bool = False, account_id: str = ACCOUNT) -> int:
    allowed = 0
    for _ in range(n):
        try:
            charge = await limits.new_order(make_account(account_id), grant, NAMES,
                                            exempt=exempt)
            await limits.spend(charge)  # as create_order spends it
        except AcmeProblem as problem:
            assert problem.type is ProblemType.RATE_LIMITED
            assert problem.status == 429
            continue
        allowed += 1
    return allowed


async def test_an_eab_keys_overrides_replace_the_configured_limits(store: Store):
    limits = RateLimits(store, FakeClock(NOW), LimitsConfig(new_orders_per_account=ONE_AN_HOUR))
    assert await orders_allowed(limits, UNRESTRICTED, 3) == 1
    more = Grant(limits={"new_orders_per_account": Limit(5, HOUR)}, eab_kid="team-a")
    assert await orders_allowed(limits, more, 6, account_id="team-a-account") == 5
    unlimited = Grant(limits={"new_orders_per_account": None}, eab_kid="team-b")
    assert await orders_allowed(limits, unlimited, 10, account_id="team-b-account") == 10


def test_an_eab_key_may_lower_the_pending_authorizations_ceiling(store: Store):
    limits = RateLimits(store, FakeClock(NOW), LimitsConfig())
    assert limits.pending_ceiling(UNRESTRICTED) == LimitsConfig().pending_authorizations_per_account
    strict = Grant(limits={"pending_authorizations_per_account": 1})
    assert limits.pending_ceiling(strict) == 1
    unlimited = Grant(limits={"pending_authorizations_per_account": None})
    assert limits.pending_ceiling(unlimited) is None


async def test_an_order_that_replaces_a_certificate_is_exempt_from_certificates_per_names(
    store: Store,
):
    """ARI (draft-ietf-acme-ari) ``replaces``: a renewal is not refused for the names it
    renews; issue 12 passes it."""
    clock = FakeClock(NOW)
    limits = RateLimits(store, clock, LimitsConfig(certificates_per_names=ONE_AN_HOUR))
    await with_accounts(store)
    assert await limits.spend(limits.issuance(UNRESTRICTED, NAMES)) is not None
    assert await orders_allowed(limits, UNRESTRICTED, 1) == 0
    assert await orders_allowed(limits, UNRESTRICTED, 2, exempt=True) == 2
    assert limits.issuance(UNRESTRICTED, NAMES[::-1], exempt=True) is None
    with pytest.raises(AcmeProblem):  # the same set, not a renewal: empty still
        await limits.spend(limits.issuance(UNRESTRICTED, NAMES[::-1]))
    clock.advance(HOUR)
    assert await orders_allowed(limits, UNRESTRICTED, 1) == 1


async def test_a_refund_gives_the_order_back(store: Store):
    limits = RateLimits(store, FakeClock(NOW), LimitsConfig(new_orders_per_account=ONE_AN_HOUR))
    spent = await limits.spend(await limits.new_order(make_account(), UNRESTRICTED, NAMES))
    assert spent is not None
    await limits.refund(spent)
    assert await orders_allowed(limits, UNRESTRICTED, 2) == 1
    await limits.refund(None)  # nothing spent (unlimited): nothing to give back


async def test_replicas_spend_from_one_bucket(replicas: tuple[Store, Store]):
    """Two replicas of the CA, each with its own RateLimits on one database: the
    limit holds for the sum of what both let through."""
    clock = FakeClock(NOW)
    config = LimitsConfig(new_accounts_per_ip=Limit(3, HOUR))
    first, second = (RateLimits(each, clock, config) for each in replicas)
    for limits in (first, second, first):
        await limits.new_account("192.0.2.7")
    for limits in (first, second):
        with pytest.raises(AcmeProblem) as refused:
            await limits.new_account("192.0.2.7")
        assert refused.value.headers == {"Retry-After": "1200"}
    await second.new_account("192.0.2.8")


async def test_what_is_counted_after_the_fact_never_fails_the_work(
    store: Store, caplog: pytest.LogCaptureFixture,
):
    config = LimitsConfig(failed_validations_per_identifier=ONE_AN_HOUR)
    limits = RateLimits(store, FakeClock(NOW), config)
    await with_accounts(store)
    for _ in range(3):  # over the limit: counted as far as it goes, never raised
        await limits.failed_validation(ACCOUNT, NAMES[0])
    await limits.failed_validation("no such account", NAMES[0])
    await store.close()
    with caplog.at_level(logging.WARNING, logger="acme_ca.authority.limits"):
        await limits.failed_validation(ACCOUNT, NAMES[0])
    assert "not counted" in caplog.text


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    (None, "unknown"),
    ("", "unknown"),
    ("not an address", "not an address"),
])
def test_clients_are_counted_by_address_and_ipv6_hosts_by_their_64(address, key):
    assert address_key(address) == key


def test_a_set_of_names_is_one_bucket_whatever_its_order_case_and_repetitions():
    a, b = NAMES
    assert names_key([a, b]) == names_key([b, a, b]) == names_key(
        [Identifier("dns", "B.bluerobin.local"), a])
    assert names_key([a]) != names_key([a, b])
    assert names_key([Identifier("ip", "a")]) != names_key([Identifier("dns", "a")])


@pytest.mark.parametrize(("wait", "seconds"), [
    (timedelta(0), 1), (timedelta(microseconds=1), 1), (timedelta(seconds=1), 1),
    (timedelta(seconds=1, microseconds=1), 2), (timedelta(hours=3), 10800),
])
def test_retry_after_is_whole_seconds_rounded_up(wait, seconds):
    assert retry_after(NOW + wait, NOW) == seconds
