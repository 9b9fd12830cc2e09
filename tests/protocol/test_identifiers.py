"""Wildcards (RFC 8555 7.1.3, 7.1.4), IP identifiers (RFC 8738) and identifier policy
through the protocol: what authorizations and challenges an order gets, and what the
certificate says."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from cryptography import x509

from tests.conftest import reissue_intermediate
from tests.protocol.helpers import NEW_ORDER, authorize, finalize, leaf_of

ALL_TYPES = ("http-01", "dns-01", "tls-alpn-01")


def first(challenges: list[dict[str, Any]]) -> dict[str, Any]:
    return challenges[0]


async def issued(server: Any, client: Any, created: Any,
                 csr: x509.CertificateSigningRequest) -> x509.Certificate:
    """Answer the first offered challenge of each authorization, finalize with `csr`:
    the leaf certificate."""
    await authorize(server, client, created.json(), pick=first)
    order, _ = await finalize(client, created.json(), csr=csr)
    assert order.status == 200, order.body
    return leaf_of((await client.post(order.json()["certificate"])).body)


async def test_wildcard_order_gets_a_dns01_only_authorization(
        server_factory: Callable[..., Any], make_csr: Callable[..., Any]) -> None:
    """RFC 8555 7.1.3: *.name is authorized by name with wildcard true; 8.4: dns-01 only."""
    server = await server_factory(challenge_types=ALL_TYPES)
    client = server.client()
    await client.new_account()
    created = await client.new_order("*.web.bluerobin.local", "web.bluerobin.local")
    assert created.status == 201, created.body
    authzs = [(await client.post(u)).json() for u in created.json()["authorizations"]]
    wild = next(a for a in authzs if a.get("wildcard"))
    plain = next(a for a in authzs if not a.get("wildcard"))
    assert wild["identifier"] == {"type": "dns", "value": "web.bluerobin.local"}
    assert [c["type"] for c in wild["challenges"]] == ["dns-01"]
    assert sorted(c["type"] for c in plain["challenges"]) == sorted(ALL_TYPES)
    cert = await issued(server, client, created,
                        make_csr("*.web.bluerobin.local", "web.bluerobin.local"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == [
        "*.web.bluerobin.local", "web.bluerobin.local"]
    await server.store.close()


async def test_wildcard_refused_without_dns01(server_factory: Callable[..., Any]) -> None:
    """A wildcard can only be proven with dns-01: without it, rejectedIdentifier."""
    server = await server_factory()
    client = server.client()
    await client.new_account()
    response = await client.new_order("*.web.bluerobin.local")
    assert response.status == 400 and response.problem_type == "rejectedIdentifier"
    await server.store.close()


async def test_ip_identifier_inside_allowed_networks(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any],
        make_csr: Callable[..., Any]) -> None:
    """RFC 8738: an ip identifier gets http-01 and tls-alpn-01 (never dns-01) and the
    certificate an iPAddress SAN."""
    hierarchy = make_hierarchy("pki", permitted_domains=None)
    server = await server_factory(hierarchy, challenge_types=ALL_TYPES,
                                  **{"policy.allowed_ip_networks": ["10.0.0.0/8"]})
    client = server.client()
    await client.new_account()
    created = await client.post(NEW_ORDER, {"identifiers": [{"type": "ip", "value": "10.1.2.3"}]})
    assert created.status == 201, created.body
    authz = (await client.post(created.json()["authorizations"][0])).json()
    assert authz["identifier"] == {"type": "ip", "value": "10.1.2.3"}
    assert sorted(c["type"] for c in authz["challenges"]) == ["http-01", "tls-alpn-01"]
    ip = ipaddress.ip_address("10.1.2.3")
    cert = await issued(server, client, created, make_csr(extra=(x509.IPAddress(ip),)))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ip]
    await server.store.close()


async def test_ip_outside_the_intermediate_constraints_is_rejected(
        server_factory: Callable[..., Any]) -> None:
    """Policy allows the network, but the intermediate's name constraints exclude every IP:
    refused at newOrder, since the certificate would not verify (RFC 5280 4.2.1.10)."""
    server = await server_factory(**{"policy.allowed_ip_networks": ["10.0.0.0/8"]})
    client = server.client()
    await client.new_account()
    response = await client.post(NEW_ORDER, {"identifiers": [{"type": "ip",
                                                              "value": "10.1.2.3"}]})
    assert response.status == 400 and response.problem_type == "rejectedIdentifier"
    assert "name constraints" in response.json()["detail"]
    await server.store.close()


async def test_identifiers_are_normalised(server_factory: Callable[..., Any]) -> None:
    """RFC 8555 7.1.4: names in A-label form, lowercase."""
    server = await server_factory()
    client = server.client()
    await client.new_account()
    created = await client.new_order("Bücher.BlueRobin.local")
    assert created.status == 201, created.body
    assert created.json()["identifiers"] == [
        {"type": "dns", "value": "xn--bcher-kva.bluerobin.local"}]
    await server.store.close()


async def test_every_bad_identifier_is_a_subproblem(server_factory: Callable[..., Any]) -> None:
    """RFC 8555 6.7.1: one problem, a subproblem per refused identifier, good ones absent."""
    server = await server_factory(**{"policy.denied_domains": ["secret.bluerobin.local"]})
    client = server.client()
    await client.new_account()
    response = await client.new_order("ok.bluerobin.local", "db.secret.bluerobin.local",
                                      "www.example.com", "bad..bluerobin.local")
    assert response.status == 400 and response.problem_type == "rejectedIdentifier"
    subs = response.json()["subproblems"]
    assert [s["identifier"]["value"] for s in subs] == [
        "db.secret.bluerobin.local", "www.example.com", "bad..bluerobin.local"]
    assert all(s["type"].endswith(":rejectedIdentifier") for s in subs)
    await server.store.close()


async def test_an_ipv4_mapped_ipv6_identifier_is_rejected(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any]) -> None:
    """RFC 8738 3: an ip identifier in ::ffff:0:0/96 names an IPv4 address in IPv6
    clothing (Go takes such a SAN as the IPv4 address): rejectedIdentifier, even when
    [policy] allows every IPv6 address, as Boulder does."""
    server = await server_factory(make_hierarchy("pki", permitted_domains=None),
                                  **{"policy.allowed_ip_networks": ["192.168.0.0/16", "::/0"]})
    client = server.client()
    await client.new_account()
    response = await client.post(NEW_ORDER, {"identifiers": [
        {"type": "ip", "value": "::ffff:10.0.0.1"}]})
    assert response.status == 400 and response.problem_type == "rejectedIdentifier", (
        response.status, response.body)
    assert "IPv4-mapped" in response.json()["detail"]
    await server.store.close()


async def assert_only_the_covering_wildcard_refused(server: Any, fragment: str) -> None:
    """*.bluerobin.local (valid for secret.bluerobin.local) is rejectedIdentifier, the
    detail saying `fragment`; *.web.bluerobin.local is ordered."""
    client = server.client()
    await client.new_account()
    response = await client.new_order("*.bluerobin.local")
    assert response.status == 400 and response.problem_type == "rejectedIdentifier", (
        response.status, response.body)
    assert fragment in response.json()["detail"]
    assert (await client.new_order("*.web.bluerobin.local")).status == 201
    await server.store.close()


async def test_a_wildcard_over_a_denied_domain_is_rejected(
        server_factory: Callable[..., Any]) -> None:
    """RFC 8555 7.1.3 / RFC 6125 6.4.3: *.bluerobin.local would be valid for the denied
    secret.bluerobin.local: rejectedIdentifier; a wildcard beside it is fine."""
    server = await server_factory(challenge_types=ALL_TYPES,
                                  **{"policy.denied_domains": ["secret.bluerobin.local"]})
    await assert_only_the_covering_wildcard_refused(server, "denied domain")


async def test_a_wildcard_over_an_excluded_subtree_is_rejected(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any]) -> None:
    """RFC 5280 4.2.1.10: after a SIGHUP loads an intermediate that excludes
    secret.bluerobin.local, *.bluerobin.local (which verifiers let through the
    exclusion and then accept for secret.bluerobin.local) is rejectedIdentifier."""
    hierarchy = make_hierarchy("pki")
    server = await server_factory(hierarchy, challenge_types=ALL_TYPES)
    reissue_intermediate(hierarchy.paths, x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("bluerobin.local")],
        excluded_subtrees=[x509.DNSName("secret.bluerobin.local")]))
    assert await server.reload()
    await assert_only_the_covering_wildcard_refused(server, "name constraints")
