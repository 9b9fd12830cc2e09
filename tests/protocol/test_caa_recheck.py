"""CAA is checked again when a valid authorization validated more than 8 hours ago is
reused for a new order, and again at finalize.

CA/Browser Forum Baseline Requirements 3.2.2.8: CAA is checked within 8 hours before
issuance; CAA is checked at validation time (RFC 8659 3), so an authorization reused
later must be checked again: Boulder ``ra.checkAuthorizationsCAA``, at newOrder and
at finalize (an authorization may age past 8 hours in between). A refusal is the
RFC 8555 6.7 ``caa`` error naming the identifier. The CAA records come from the fake
DNS server of tests/validation/conftest.py, over real UDP; the clock is injected.
"""
# ruff: noqa: F811  (the fake_dns fixture imported from tests/validation is a parameter)

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.acme_client import AcmeTestClient, b64, make_csr
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import assert_problem, issue, registered
from tests.validation.conftest import FakeDns, StartDns, fake_dns  # noqa: F401 (fixture)

ZONE = "bluerobin.local"
NAME = f"web.{ZONE}"
CA = "ca.bluerobin.local"


@pytest.fixture
async def caa_server(
    server_factory: Callable[..., Any], fake_dns: StartDns
) -> AsyncIterator[tuple[AcmeServer, FakeDns]]:
    """A server checking CAA ([validation] caa_identities) against a DNS whose CAA set
    at the zone names this CA."""
    dns, address = await fake_dns(records={ZONE: [f'CAA 0 issue "{CA}"']})
    server = await server_factory(
        **{"validation.caa_identities": [CA], "validation.resolvers": [address]}
    )
    yield server, dns
    await server.store.close()


def advance(server: AcmeServer, client: AcmeTestClient, hours: int) -> None:
    """Move the injected clock; the client's last nonce has expired by then."""
    server.clock.advance(timedelta(hours=hours))
    client.nonce = None


@pytest.mark.parametrize(
    "forbidding",
    ['0 issue "ca.other.example"', f'0 issue "{CA}; validationmethods=dns-01"'],
    ids=["another-ca", "another-method"],
)
async def test_reuse_after_8_hours_rechecks_caa_and_refuses(
    caa_server: tuple[AcmeServer, FakeDns], forbidding: str
) -> None:
    """After the first issuance the CAA set stops allowing this CA (or the http-01 the
    authorization was validated with): an authorization validated 1 hour ago is reused
    without a lookup; validated 9 hours ago, CAA is asked again and the order refused
    with caa (403) naming the identifier."""
    server, dns = caa_server
    client = await registered(server)
    await issue(server, client, NAME)
    assert (NAME, "CAA") in dns.queries  # checked at validation time
    dns.records[ZONE] = [f"CAA {forbidding}"]
    dns.queries.clear()

    advance(server, client, 1)
    reused = await client.new_order(NAME)
    assert reused.status == 201, reused.body
    assert reused.json()["status"] == "ready"
    assert dns.queries == []

    advance(server, client, 8)
    refused = await client.new_order(NAME)
    doc = assert_problem(refused, 403, "caa")
    assert "identifier" not in doc  # RFC 8555 6.7.1: only subproblems name one
    assert doc["detail"].startswith(f"CAA rechecked for {NAME}: CAA at {ZONE} ")
    assert (NAME, "CAA") in dns.queries


async def test_reuse_after_8_hours_with_caa_still_allowing(
    caa_server: tuple[AcmeServer, FakeDns],
) -> None:
    """The recheck that passes keeps the authorization: the order is ready at once."""
    server, dns = caa_server
    client = await registered(server)
    await issue(server, client, NAME)
    dns.queries.clear()
    advance(server, client, 9)
    reused = await client.new_order(NAME)
    assert reused.status == 201, reused.body
    assert reused.json()["status"] == "ready"
    assert (NAME, "CAA") in dns.queries


async def test_every_refused_identifier_is_a_subproblem(
    caa_server: tuple[AcmeServer, FakeDns],
) -> None:
    """RFC 8555 6.7.1: two reused authorizations refused by the recheck: one caa error
    with a subproblem per identifier."""
    server, dns = caa_server
    client = await registered(server)
    names = [NAME, f"api.{ZONE}"]
    await issue(server, client, *names)
    dns.records[ZONE] = ['CAA 0 issue "ca.other.example"']
    advance(server, client, 9)
    doc = assert_problem(await client.new_order(*names), 403, "caa")
    assert sorted(p["identifier"]["value"] for p in doc["subproblems"]) == sorted(names)
    assert {p["type"] for p in doc["subproblems"]} == {doc["type"]}


@pytest.mark.parametrize("allowing", [True, False], ids=["caa-allows", "caa-forbids"])
async def test_finalize_rechecks_caa_of_an_authorization_validated_over_8_hours_ago(
    caa_server: tuple[AcmeServer, FakeDns], allowing: bool
) -> None:
    """Reused 7 hours after its validation (no recheck at newOrder), the authorization is
    23 hours old when the order is finalized: CAA is asked again before anything is
    signed (Boulder ``ra.FinalizeOrder``). When CAA now forbids this CA, finalize is
    refused with caa (403, RFC 8555 6.7) naming the identifier, and the order stays
    ready, without a certificate."""
    server, dns = caa_server
    client = await registered(server)
    await issue(server, client, NAME)
    advance(server, client, 7)
    order = await client.new_order(NAME)
    assert order.json()["status"] == "ready"
    if not allowing:
        dns.records[ZONE] = ['CAA 0 issue "ca.other.example"']
    dns.queries.clear()
    advance(server, client, 16)
    csr, _ = make_csr([NAME])
    finalized = await client.post(order.json()["finalize"], {"csr": b64(csr)})
    assert (NAME, "CAA") in dns.queries
    after = (await client.post(order.headers["Location"])).json()
    if allowing:
        assert finalized.status == 200, finalized.body
        assert after["status"] == "valid"
        return
    doc = assert_problem(finalized, 403, "caa")
    assert "identifier" not in doc  # RFC 8555 6.7.1: only subproblems name one
    assert doc["detail"].startswith(f"CAA rechecked for {NAME}: CAA at {ZONE} ")
    assert after["status"] == "ready"
    assert "certificate" not in after


async def test_the_recheck_is_bounded_by_the_validation_timeout(
    server_factory: Callable[..., Any], fake_dns: StartDns
) -> None:
    """CAA climbs the name one label at a time (RFC 8659 3), each lookup bounded on its
    own: 15 lookups answered 0.25 s late each would hold newOrder for almost 4 s. The
    whole recheck is bounded by [validation] timeout (1 s here); running out of time
    fails the check (fail closed) with caa, saying the lookup timed out."""
    dns, address = await fake_dns(records={ZONE: [f'CAA 0 issue "{CA}"']})
    server = await server_factory(**{
        "validation.caa_identities": [CA], "validation.resolvers": [address],
        "validation.timeout": "1s",
    })
    deep = ".".join(["a"] * 14) + f".{ZONE}"  # the CAA set is 15 lookups up
    client = await registered(server)
    await issue(server, client, deep)
    dns.delay = 0.25  # each lookup in time (its own limit is 1 s), all of them not
    dns.queries.clear()
    advance(server, client, 9)
    refused = await client.new_order(deep)
    doc = assert_problem(refused, 403, "caa")
    assert doc["detail"] == f"CAA rechecked for {deep}: the CAA lookup timed out after 1s"
    assert len(dns.queries) < 15
    await server.store.close()
