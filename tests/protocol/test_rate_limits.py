"""Rate limits through the protocol (RFC 8555 6.6): each limit of [limits] hit, answered
429 rateLimited with Retry-After and a detail naming the limit, its value and when it
resets, and released again as time passes (FakeClock) or as what it counts goes away."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from acme_ca.domain.models import OrderStatus
from acme_ca.errors import StoreUnavailable
from acme_ca.pki.issuer import Issuer
from tests.acme_client import AcmeTestClient, Response, b64, jwk_of, make_csr, sign
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    NEW_ACCOUNT,
    assert_problem,
    finalize,
    http01,
    issue,
    ready_order,
    registered,
)

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def fail_once(store: Any, method: str) -> None:
    """The store's ``method`` raises once, as a database that went away would; then works."""
    real = getattr(store, method)
    calls = 0

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return await real(*args, **kwargs)

    setattr(store, method, failing_once)


def rate_limited(response: Any, limit: str, value: str, retry_after: timedelta
                 ) -> dict[str, Any]:
    """RFC 8555 6.6: 429 rateLimited, Retry-After in whole seconds (rounded up), and a
    detail that names the limit, its value and when it resets."""
    doc = assert_problem(response, 429, "rateLimited")
    assert response.headers["Retry-After"] == str(math.ceil(retry_after.total_seconds()))
    assert limit in doc["detail"] and value in doc["detail"], doc["detail"]
    assert RFC3339.search(doc["detail"]), doc["detail"]
    return doc


def advance(server: AcmeServer, delta: timedelta, *clients: AcmeTestClient) -> None:
    """Time passes; the clients' nonces, kept from their last response, expire with it."""
    server.clock.advance(delta)
    for client in clients:
        client.nonce = None


async def limited(server_factory: Callable[..., Any], **limits: Any) -> AcmeServer:
    return await server_factory(**{f"limits.{name}": value for name, value in limits.items()})


async def test_new_orders_per_account_is_hit_then_released(server_factory):
    server = await limited(server_factory, new_orders_per_account="2/1h")
    client = await registered(server)
    for n in range(2):
        assert (await client.new_order(f"n{n}.bluerobin.local")).status == 201
    assert rate_limit_rows(server) == 2  # the address that made the account, the account
    refused = await client.new_order("n2.bluerobin.local")
    doc = rate_limited(refused, "new_orders_per_account", "2/1h", timedelta(minutes=30))
    resets = server.clock.now() + timedelta(hours=1, microseconds=999_999)  # rounded up
    assert f"resets at {resets:%Y-%m-%dT%H:%M:%S}Z" in doc["detail"]
    other = await registered(server)  # per account
    assert (await other.new_order("n2.bluerobin.local")).status == 201
    advance(server, timedelta(minutes=29, seconds=59), client)
    rate_limited(await client.new_order("n2.bluerobin.local"), "new_orders_per_account",
                 "2/1h", timedelta(seconds=1))
    advance(server, timedelta(seconds=1), client)
    assert (await client.new_order("n2.bluerobin.local")).status == 201
    await server.store.close()


async def test_a_refused_new_order_costs_nothing(server_factory):
    """An order refused by policy, or one whose creation failed, does not count."""
    server = await limited(server_factory, new_orders_per_account="1/1h")
    client = await registered(server)
    assert_problem(await client.new_order("www.example.com"), 400, "rejectedIdentifier")
    store = server.store
    fail_once(store, "create_order")
    assert_problem(await client.new_order("a.bluerobin.local"), 500, "serverInternal")
    assert (await client.new_order("a.bluerobin.local")).status == 201  # refunded
    rate_limited(await client.new_order("b.bluerobin.local"), "new_orders_per_account",
                 "1/1h", timedelta(hours=1))
    await store.close()


async def test_new_accounts_per_ip_counts_only_created_accounts_by_the_peer_address(
    server_factory,
):
    server = await limited(server_factory, new_accounts_per_ip="2/2h")
    first = await registered(server)
    assert (await first.new_account()).status == 200  # its key again: found, not created
    await registered(server)
    third = server.client()
    refused = await third.new_account()
    doc = rate_limited(refused, "new_accounts_per_ip", "2/2h", timedelta(hours=1))
    assert "127.0.0.1" in doc["detail"]
    forwarded = await new_account_forwarded_for(server, "203.0.113.7")
    rate_limited(forwarded, "new_accounts_per_ip", "2/2h", timedelta(hours=1))
    advance(server, timedelta(hours=1), third)
    assert (await third.new_account()).status == 201
    await server.store.close()


async def test_a_new_account_that_fails_costs_nothing(server_factory):
    """RFC 8555 6.6: new_accounts_per_ip counts created accounts only: a newAccount
    whose creation fails (here the database, once) gives its spend back."""
    server = await limited(server_factory, new_accounts_per_ip="1/1h")
    store = server.store
    fail_once(store, "create_account")
    client = server.client()
    assert_problem(await client.new_account(), 500, "serverInternal")
    assert (await client.new_account()).status == 201  # refunded
    rate_limited(await server.client().new_account(), "new_accounts_per_ip", "1/1h",
                 timedelta(hours=1))
    await store.close()


async def new_account_forwarded_for(server: AcmeServer, address: str) -> Any:
    """newAccount with an X-Forwarded-For header, which any client can write: the limit
    reads the connection's peer, never the header."""
    client = server.client()
    protected = {"alg": "ES256", "nonce": await client.fresh_nonce(), "url": NEW_ACCOUNT,
                 "jwk": jwk_of(client.key)}
    jws = sign(client.key, protected, json.dumps({"termsOfServiceAgreed": True}).encode())
    response = await server.http.post("/acme/new-account", data=json.dumps(jws), headers={
        "Content-Type": "application/jose+json", "X-Forwarded-For": address,
        "Forwarded": f"for={address}"})
    return Response(response.status, response.headers, await response.read())


async def test_pending_authorizations_per_account_counts_those_pending_now_and_asked(
    server_factory,
):
    server = await limited(server_factory, pending_authorizations_per_account=2)
    client = await registered(server)
    created = await client.new_order("a.bluerobin.local", "b.bluerobin.local")
    assert created.status == 201
    lifetime = server.config.policy.authorization_lifetime
    refused = await client.new_order("c.bluerobin.local")
    doc = rate_limited(refused, "pending_authorizations_per_account", "= 2", lifetime)
    assert "2 pending and 1 more" in doc["detail"]
    other = await registered(server)
    assert (await other.new_order("c.bluerobin.local")).status == 201  # per account
    authz_url = created.json()["authorizations"][0]
    challenge = http01((await client.post(authz_url)).json()["challenges"])
    server.validator.served[challenge["token"]] = client.key_authorization(challenge["token"])
    assert (await client.post(challenge["url"], {})).status == 200
    await server.settle()  # one of the two is valid now: one place free
    assert (await client.new_order("c.bluerobin.local")).status == 201
    rate_limited(await client.new_order("d.bluerobin.local"),
                 "pending_authorizations_per_account", "= 2", lifetime)
    advance(server, lifetime, client)  # they expire
    assert (await client.new_order("d.bluerobin.local")).status == 201
    await server.store.close()


async def test_failed_validations_per_identifier_is_per_account_and_identifier(
    server_factory,
):
    """Boulder's failed-authorizations-per-domain-per-account: a name whose validation
    failed is refused to that account for a while, other names and accounts are not."""
    server = await limited(server_factory, failed_validations_per_identifier="1/1h")
    client = await registered(server)
    await failed_validation(server, client, "a.bluerobin.local")
    refused = await client.new_order("b.bluerobin.local", "a.bluerobin.local")
    doc = rate_limited(refused, "failed_validations_per_identifier", "1/1h", timedelta(hours=1))
    assert "a.bluerobin.local" in doc["detail"]
    assert (await client.new_order("b.bluerobin.local")).status == 201
    other = await registered(server)
    assert (await other.new_order("a.bluerobin.local")).status == 201
    advance(server, timedelta(hours=1), client)
    assert (await client.new_order("a.bluerobin.local")).status == 201
    await server.store.close()


async def failed_validation(server: AcmeServer, client: AcmeTestClient, name: str) -> None:
    """An order for ``name`` whose http-01 validation fails (nothing is served)."""
    created = await client.new_order(name)
    assert created.status == 201, created.body
    authz = (await client.post(created.json()["authorizations"][0])).json()
    assert (await client.post(http01(authz["challenges"])["url"], {})).status == 200
    await server.settle()
    assert (await client.post(created.json()["authorizations"][0])).json()["status"] == "invalid"


async def test_orders_opened_first_get_no_more_failed_validations(server_factory):
    """RFC 8555 6.6: failed_validations_per_identifier is checked again when a challenge
    is answered, so orders opened before the failures get no more validations of the
    name than the limit: the answer is 429 rateLimited and the challenge stays pending."""
    server = await limited(server_factory, failed_validations_per_identifier="2/1h")
    client = await registered(server)
    opened = [(await client.new_order("a.bluerobin.local")).json() for _ in range(3)]
    for order in opened[:2]:
        authz = (await client.post(order["authorizations"][0])).json()
        assert (await client.post(http01(authz["challenges"])["url"], {})).status == 200
        await server.settle()
    authz = (await client.post(opened[2]["authorizations"][0])).json()
    challenge_url = http01(authz["challenges"])["url"]
    rate_limited(await client.post(challenge_url, {}), "failed_validations_per_identifier",
                 "2/1h", timedelta(minutes=30))
    await server.settle()
    assert (await client.post(challenge_url)).json()["status"] == "pending"
    advance(server, timedelta(minutes=30), client)
    assert (await client.post(challenge_url, {})).status == 200
    await server.store.close()


async def test_a_failure_inside_the_server_is_not_the_clients_failed_validation(
    server_factory,
):
    server = await limited(server_factory, failed_validations_per_identifier="1/1h")

    async def broken(*_: Any) -> Any:
        raise RuntimeError("a bug in a validator")

    server.validator.validate = broken  # type: ignore[method-assign]
    client = await registered(server)
    await failed_validation(server, client, "a.bluerobin.local")
    assert (await client.new_order("a.bluerobin.local")).status == 201
    await server.store.close()


async def test_certificates_per_names_is_per_exact_set_of_names(server_factory):
    server = await limited(server_factory, certificates_per_names="1/7d")
    client = await registered(server)
    await issue(server, client, "a.bluerobin.local", "b.bluerobin.local")
    refused = await client.new_order("b.bluerobin.local", "a.bluerobin.local")
    doc = rate_limited(refused, "certificates_per_names", "1/7d", timedelta(days=7))
    assert "a.bluerobin.local, b.bluerobin.local" in doc["detail"]
    other = await registered(server)  # per names, whoever asks
    rate_limited(await other.new_order("a.bluerobin.local", "b.bluerobin.local"),
                 "certificates_per_names", "1/7d", timedelta(days=7))
    assert (await client.new_order("a.bluerobin.local")).status == 201  # another set
    advance(server, timedelta(days=7), client)
    await issue(server, client, "a.bluerobin.local", "b.bluerobin.local")
    await server.store.close()


async def test_orders_opened_before_the_limit_was_hit_get_no_more_certificates(
        server_factory):
    """RFC 8555 6.6: certificates_per_names is spent by finalize before the issuance
    starts, so orders opened while the bucket was full get no more certificates than it
    holds: the second is refused 429 rateLimited with Retry-After and stays ready, to
    be finalized once the limit allows it."""
    server = await limited(server_factory, certificates_per_names="1/1h")
    client = await registered(server)
    orders = [await ready_order(server, client, "a.bluerobin.local") for _ in range(3)]
    assert (await finalize(client, orders[0][0], "a.bluerobin.local"))[0].status == 200
    for order, url in orders[1:]:
        refused, _ = await finalize(client, order, "a.bluerobin.local")
        rate_limited(refused, "certificates_per_names", "1/1h", timedelta(hours=1))
        assert (await client.post(url)).json()["status"] == "ready"
    advance(server, timedelta(hours=1), client)
    assert (await finalize(client, orders[1][0], "a.bluerobin.local"))[0].status == 200
    await server.store.close()


async def test_an_issuance_that_fails_gives_its_certificate_back(
        server_factory, monkeypatch: pytest.MonkeyPatch):
    """RFC 8555 6.6: what finalize spent of certificates_per_names is refunded when no
    certificate comes of it (here the signature fails: the order is invalid)."""
    server = await limited(server_factory, certificates_per_names="1/7d")
    client = await registered(server)
    broken, _ = await ready_order(server, client, "a.bluerobin.local")
    second, _ = await ready_order(server, client, "a.bluerobin.local")
    real_issue = Issuer.issue

    def unplugged(self: Issuer, request: Any) -> Any:
        raise RuntimeError("HSM unplugged")

    monkeypatch.setattr(Issuer, "issue", unplugged)
    assert (await finalize(client, broken, "a.bluerobin.local"))[0].status == 500
    monkeypatch.setattr(Issuer, "issue", real_issue)
    assert (await finalize(client, second, "a.bluerobin.local"))[0].status == 200
    await server.store.close()


async def test_an_issuance_whose_end_is_unknown_keeps_its_certificate(server_factory):
    """RFC 8555 6.6: when the database goes away as the certificate is stored, whether it
    was is unknown until the sweeper settles the order (issuance.sign_for_order), so
    finalize keeps what it spent of certificates_per_names: a certificate the store may
    hold is counted, and a second order for the names is refused."""
    server = await limited(server_factory, certificates_per_names="1/7d")
    client = await registered(server)
    first, _ = await ready_order(server, client, "a.bluerobin.local")
    second, _ = await ready_order(server, client, "a.bluerobin.local")
    store = server.store
    real = store.finish_order

    async def cut_short(*args: Any, **kwargs: Any) -> Any:
        store.finish_order = real  # type: ignore[method-assign]
        raise StoreUnavailable("the database went away")

    store.finish_order = cut_short  # type: ignore[method-assign]
    assert_problem((await finalize(client, first, "a.bluerobin.local"))[0], 503,
                   "serverInternal")
    rate_limited((await finalize(client, second, "a.bluerobin.local"))[0],
                 "certificates_per_names", "1/7d", timedelta(days=7))
    await store.close()


async def test_a_finalize_that_loses_the_race_for_the_order_keeps_no_certificate(
        server_factory):
    """RFC 8555 6.6, 7.4: two finalize requests of one ready order with one CSR, both
    past their checks; the first issues, the second loses the order to it and gets the
    valid order back (an identical re-finalize). Only the one certificate counts
    against certificates_per_names: a second order for the names still gets one."""
    server = await limited(server_factory, certificates_per_names="2/1h")
    client = await registered(server)
    order, _ = await ready_order(server, client, "a.bluerobin.local")
    twin = server.client(key=client.key, kid=client.kid)
    store = server.store
    real = store.start_issuance
    arrived: list[str] = []
    both = asyncio.Event()

    async def one_after_the_other(order_id: str, *args: Any, **kwargs: Any) -> Any:
        arrived.append(order_id)
        if len(arrived) == 2:
            both.set()
        second = len(arrived) == 2
        await asyncio.wait_for(both.wait(), 10)
        while second and (await store.get_order(order_id)).status is not OrderStatus.VALID:
            await asyncio.sleep(0.01)  # the first issues before the second tries
        return await real(order_id, *args, **kwargs)

    store.start_issuance = one_after_the_other  # type: ignore[method-assign]
    csr, _ = make_csr(["a.bluerobin.local"])
    responses = await asyncio.gather(*(each.post(order["finalize"], {"csr": b64(csr)})
                                       for each in (client, twin)))
    assert [r.status for r in responses] == [200, 200], [r.body for r in responses]
    assert [r.json()["status"] for r in responses] == ["valid", "valid"]
    store.start_issuance = real  # type: ignore[method-assign]
    again, _ = await ready_order(server, client, "a.bluerobin.local")
    assert (await finalize(client, again, "a.bluerobin.local"))[0].status == 200
    await store.close()


async def test_concurrent_new_orders_stay_under_the_pending_ceiling(server_factory):
    """RFC 8555 6.6: pending_authorizations_per_account = 2 is a ceiling at once: six
    newOrders of one account at once, one new name each, leave two pending and the
    others are refused 429 rateLimited (the store counts inside the order's write)."""
    server = await limited(server_factory, pending_authorizations_per_account=2)
    owner = await registered(server)
    clients = [server.client(key=owner.key, kid=owner.kid) for _ in range(6)]
    responses = await asyncio.gather(*(each.new_order(f"p{n}.bluerobin.local")
                                       for n, each in enumerate(clients)))
    assert sorted(r.status for r in responses) == [201] * 2 + [429] * 4
    for refused in (r for r in responses if r.status == 429):
        assert_problem(refused, 429, "rateLimited")
        assert "pending_authorizations_per_account = 2" in refused.json()["detail"]
    pending = await server.store.count_pending_authorizations(
        owner.kid.rsplit("/", 1)[-1], server.clock.now())
    assert pending.count == 2
    await server.store.close()


async def test_unlimited_limits_never_refuse(server_factory):
    server = await limited(server_factory, new_orders_per_account="unlimited",
                           new_accounts_per_ip="unlimited",
                           pending_authorizations_per_account="unlimited")
    client = await registered(server)
    for n in range(5):
        assert (await client.new_order(f"n{n}.bluerobin.local")).status == 201
    assert rate_limit_rows(server) == 0  # nothing was even counted
    await server.store.close()


def rate_limit_rows(server: AcmeServer) -> int:
    """The buckets written (SQLite: the test's file)."""
    path = server.config.storage.url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM rate_limits").fetchone()[0])
