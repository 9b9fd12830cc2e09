"""Certificate profiles (draft-ietf-acme-profiles-00): the directory offers them
(section 3, ``meta.profiles``), newOrder names one in ``profile`` or gets the default,
the order echoes it (section 4), an unknown or retired one is invalidProfile (4, 6.3),
and finalize checks it again ("a profile the CA is no longer willing to issue under":
invalidProfile) before the profile decides the certificate: its extended key usages,
validity and key types."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from ipaddress import ip_address
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from acme_ca.domain.models import serial_hex
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    NEW_ORDER,
    assert_problem,
    finalize,
    leaf_of,
    ready_order,
    registered,
)

NAME = "worker.bluerobin.local"
SERVER = [ExtendedKeyUsageOID.SERVER_AUTH]
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]


def usages(certificate: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


async def issued(server: AcmeServer, *names: str, csr_key: Any = None,
                 csr: x509.CertificateSigningRequest | None = None, **extra: Any
                 ) -> tuple[dict[str, Any], x509.Certificate]:
    """The valid order and its leaf, for an order with ``extra`` (e.g. profile),
    finalized with a fresh CSR for ``names`` or with ``csr``."""
    client = await registered(server)
    created = await client.new_order(*names, **extra)
    assert created.status == 201, created.body
    order, order_url = await ready_order(server, client, *names, created=created)
    response, _ = await finalize(client, order, *names, csr_key=csr_key, csr=csr)
    assert response.status == 200, response.body
    valid = (await client.post(order_url)).json()
    certificate = await client.post(valid["certificate"])
    return valid, leaf_of(certificate.body)


async def test_the_directory_offers_the_profiles_not_retired(
        server_factory: Callable[..., Any]) -> None:
    """Section 3: meta.profiles maps each profile's name to its description."""
    server = await server_factory(**{"profiles.mtls": {"retired": True},
                                     "profiles.nats": {"description": "NATS workers",
                                                       "extended_key_usages": ["clientAuth"]}})
    meta = (await server.client().directory())["meta"]
    assert set(meta["profiles"]) == {"server", "client", "nats"}
    assert meta["profiles"]["nats"] == "NATS workers"
    assert meta["profiles"]["client"].startswith("TLS clients")
    await server.store.close()


async def test_an_order_naming_no_profile_gets_the_default_and_says_so(
        server: AcmeServer) -> None:
    """Section 4: the server selects a profile and the order (created and read) names
    it; the certificate is the server profile's, serverAuth only."""
    order, leaf = await issued(server, NAME)
    assert order["profile"] == "server"
    assert usages(leaf) == SERVER
    record = await server.store.get_certificate(serial_hex(leaf.serial_number))
    assert record.profile == "server"


async def test_the_client_profile_gives_a_client_auth_only_certificate(
        server: AcmeServer) -> None:
    """Section 4: the profile named is echoed and decides the certificate: clientAuth
    only, what a NATS worker or a PostgreSQL client presents (RFC 5280 4.2.1.12)."""
    order, leaf = await issued(server, NAME, profile="client")
    assert order["profile"] == "client"
    assert usages(leaf) == CLIENT
    assert (await server.store.get_certificate(serial_hex(leaf.serial_number))).profile == "client"
    _, both = await issued(server, NAME, profile="mtls")
    assert usages(both) == SERVER + CLIENT


async def test_the_csr_extensions_never_reach_the_certificate(server: AcmeServer) -> None:
    """The profile decides the certificate, not the CSR: extended key usages, a CA
    basicConstraints and keyCertSign asked in it are left out (RFC 8555 7.4: the CA
    decides what it certifies)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                 ExtendedKeyUsageOID.CODE_SIGNING]),
                          critical=False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                        False), critical=True)
           .sign(key, hashes.SHA256()))
    _, leaf = await issued(server, NAME, csr=csr, profile="client")
    assert usages(leaf) == CLIENT
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert not leaf.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


async def test_default_profile_is_configurable(server_factory: Callable[..., Any]) -> None:
    server = await server_factory(**{"acme.default_profile": "mtls"})
    order, leaf = await issued(server, NAME)
    assert order["profile"] == "mtls"
    assert usages(leaf) == SERVER + CLIENT
    await server.store.close()


@pytest.mark.parametrize("profile", ["nothing", "mtls", ""])
async def test_an_unknown_or_retired_profile_is_invalid_profile(
        server_factory: Callable[..., Any], profile: str) -> None:
    """Sections 4 and 6.3: a profile the server does not advertise is invalidProfile
    (400), and no order is made."""
    server = await server_factory(**{"profiles.mtls": {"retired": True}})
    client = await registered(server)
    doc = assert_problem(await client.new_order(NAME, profile=profile), 400, "invalidProfile")
    assert repr(profile) in doc["detail"] and "offered: client, server" in doc["detail"], doc
    await server.store.close()


async def test_a_long_profile_name_is_cut_in_the_detail(server: AcmeServer) -> None:
    """The invalidProfile detail repeats at most about 64 characters of the name asked
    for: a client's 10,000 characters are not echoed into the problem (and logs)."""
    client = await registered(server)
    asked = "p" * 10_000
    doc = assert_problem(await client.new_order(NAME, profile=asked), 400, "invalidProfile")
    assert "'" + "p" * 61 + "...' is unknown" in doc["detail"], doc
    assert len(doc["detail"]) < 200, doc


@pytest.mark.parametrize("profile", [1, ["client"], {"name": "client"}, True])
async def test_a_profile_that_is_not_a_string_is_malformed(
        server: AcmeServer, profile: Any) -> None:
    """Section 4: profile is a string."""
    client = await registered(server)
    assert_problem(await client.new_order(NAME, profile=profile), 400, "malformed")


IP = {"type": "ip", "value": "10.0.0.5"}


async def ip_server(server_factory: Callable[..., Any], hierarchy: Any,
                    **profiles: dict[str, Any]) -> AcmeServer:
    """A CA that issues for 10.0.0.0/8 too, with these [profiles.NAME] tables."""
    return await server_factory(hierarchy, **{"policy.allowed_ip_networks": ["10.0.0.0/8"]},
                                **{f"profiles.{name}": t for name, t in profiles.items()})


async def order_ip(client: Any, profile: str | None = None) -> Any:
    """A newOrder for IP, naming ``profile`` if given."""
    payload = {"identifiers": [IP]} if profile is None else {"identifiers": [IP],
                                                               "profile": profile}
    return await client.post(NEW_ORDER, payload)


async def test_identifier_types_of_a_profile(server_factory: Callable[..., Any],
                                             make_hierarchy: Callable[..., Any]) -> None:
    """Section 4: a profile named alongside an identifier of a type it does not issue
    for is "incompatible with the rest of the contents of the request":
    invalidProfile. Named by no one (the default), the identifier is refused instead:
    rejectedIdentifier (RFC 8555 6.7)."""
    server = await ip_server(server_factory, make_hierarchy("ip-pki", permitted_domains=None),
                             client={"identifier_types": ["dns"]},
                             server={"identifier_types": ["dns"]})
    client = await registered(server)
    doc = assert_problem(await order_ip(client, "client"), 400, "invalidProfile")
    assert "profile client does not issue for ip identifiers" in doc["detail"], doc
    assert_problem(await order_ip(client), 400, "rejectedIdentifier")
    allowed = await order_ip(client, "mtls")
    assert allowed.status == 201, allowed.body
    await server.store.close()


async def test_allowed_domains_of_a_profile(server_factory: Callable[..., Any]) -> None:
    """A profile's allowed_domains narrows [policy]'s: a name outside it is
    rejectedIdentifier (RFC 8555 6.7), with a subproblem naming it (6.7.1)."""
    server = await server_factory(
        **{"profiles.client": {"allowed_domains": ["workers.bluerobin.local"]}})
    client = await registered(server)
    inside = await client.new_order("a.workers.bluerobin.local", profile="client")
    assert inside.status == 201, inside.body
    outside = await client.new_order("db.bluerobin.local", "workers.bluerobin.local",
                                     profile="client")
    doc = assert_problem(outside, 400, "rejectedIdentifier")
    assert [s["identifier"]["value"] for s in doc["subproblems"]] == ["db.bluerobin.local"]
    assert "outside the domains of profile client" in doc["detail"], doc
    await server.store.close()


async def test_a_profile_narrowed_to_domains_keeps_out_ip_addresses(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any]) -> None:
    """A profile's allowed_domains shuts out IP addresses, as a grant's domains do
    (authority/identifiers.py): [profiles.client] allowed_domains alone does not issue
    client certificates for every address of [policy] allowed_ip_networks. Naming "ip"
    in its identifier_types lets them in again."""
    hierarchy = make_hierarchy("ip-pki", permitted_domains=None)
    workers = {"allowed_domains": ["workers.bluerobin.local"]}
    narrowed = await ip_server(server_factory, hierarchy, client=workers)
    doc = assert_problem(await order_ip(await registered(narrowed), "client"), 400,
                         "invalidProfile")
    assert "profile client does not issue for ip identifiers" in doc["detail"], doc
    await narrowed.store.close()
    explicit = await ip_server(server_factory, hierarchy,
                               client={**workers, "identifier_types": ["dns", "ip"]})
    allowed = await order_ip(await registered(explicit), "client")
    assert allowed.status == 201, allowed.body
    await explicit.store.close()


async def test_allowed_domains_against_wildcards_case_and_idna_dots(
        server_factory: Callable[..., Any]) -> None:
    """allowed_domains is at-or-under, label by label, after normalising (RFC 8555 7.1.4
    wildcard, lower case, U+FF0E read as a dot as IDNA does): no suffix, parent or
    trailing-dot trick gets outside it."""
    server = await server_factory(challenge_types=("http-01", "dns-01"), **{
        "profiles.client": {"allowed_domains": ["workers.bluerobin.local"]}})
    client = await registered(server)
    for bad in ["*.bluerobin.local", "xworkers.bluerobin.local", "bluerobin.local",
                "workers.bluerobin.local.", "WORKERS.bluerobin.local.evil",
                "a.workers\uff0ebluerobin\uff0elocal.x"]:
        refused = await client.new_order(bad, profile="client")
        assert refused.status == 400, (bad, refused.body)
        assert refused.problem_type in ("rejectedIdentifier", "malformed"), (bad, refused.body)
    for good in ["*.workers.bluerobin.local", "A.WORKERS.BLUEROBIN.LOCAL",
                 "a.workers\uff0ebluerobin\uff0elocal"]:
        created = await client.new_order(good, profile="client")
        assert created.status == 201, (good, created.body)
        assert all(i["value"].endswith("workers.bluerobin.local")
                   for i in created.json()["identifiers"])
    await server.store.close()


async def test_the_profile_validity(server_factory: Callable[..., Any]) -> None:
    """The profile's default_validity is the certificate's lifetime when the order asks
    none (the backdate inside it); a notAfter beyond its max_validity is malformed at
    newOrder (RFC 8555 7.1.3), whatever [policy] allows."""
    server = await server_factory(
        **{"profiles.client": {"default_validity": "24h", "max_validity": "2d"}})
    _, leaf = await issued(server, NAME, profile="client")
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24)
    client = await registered(server)
    not_after = (server.clock.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = assert_problem(await client.new_order(NAME, profile="client", notAfter=not_after),
                         400, "malformed")
    assert "maximum of profile client" in doc["detail"], doc
    await server.store.close()


async def test_a_key_type_the_profile_does_not_allow_is_bad_csr(
        server_factory: Callable[..., Any]) -> None:
    """Finalize: the CSR's key must be of a type the profile allows; badCSR names them,
    and the order stays ready for a CSR with another key."""
    server = await server_factory(**{"profiles.client": {"key_types": ["ecdsa-p384"]}})
    client = await registered(server)
    created = await client.new_order(NAME, profile="client")
    order, order_url = await ready_order(server, client, NAME, created=created)
    response, _ = await finalize(client, order, NAME)  # a P-256 key
    doc = assert_problem(response, 400, "badCSR")
    assert "ECDSA P-256 key is not allowed by profile client (allowed: ecdsa-p384)" in (
        doc["detail"]), doc
    assert (await client.post(order_url)).json()["status"] == "ready"
    response, _ = await finalize(client, order, NAME,
                                 csr_key=ec.generate_private_key(ec.SECP384R1()))
    assert response.status == 200, response.body
    await server.store.close()


@pytest.mark.parametrize("change", [{"retired": True}, None], ids=["retired", "removed"])
async def test_finalize_under_a_profile_no_longer_offered_is_invalid_profile(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any],
        change: dict[str, Any] | None) -> None:
    """Section 4: "If a server receives a request to finalize an Order whose profile the
    CA is no longer willing to issue under, it MUST respond with invalidProfile." The
    order becomes invalid (RFC 8555 7.1.6), as for a name the policy now refuses."""
    hierarchy = make_hierarchy("pki")
    nats = {"description": "NATS", "extended_key_usages": ["clientAuth"]}
    before = await server_factory(hierarchy, **{"profiles.nats": nats})
    client = await registered(before)
    created = await client.new_order(NAME, profile="nats")
    order, order_url = await ready_order(before, client, NAME, created=created)
    await before.store.close()
    overrides = {} if change is None else {"profiles.nats": {**nats, **change}}
    after = await server_factory(hierarchy, **overrides)
    same_account = after.client(key=client.key, kid=client.kid)
    response, _ = await finalize(same_account, order, NAME)
    doc = assert_problem(response, 400, "invalidProfile")
    assert "'nats'" in doc["detail"], doc
    ended = (await same_account.post(order_url)).json()
    assert ended["status"] == "invalid", ended
    assert ended["error"]["type"].endswith(":invalidProfile"), ended
    await after.store.close()


async def test_finalize_after_the_profile_narrowed_its_domains_is_refused(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any]) -> None:
    """The operator narrows a profile's allowed_domains and restarts: an order made
    before for a name now outside them is refused at finalize as a new one would be at
    newOrder (rejectedIdentifier), and becomes invalid (RFC 8555 7.1.6)."""
    hierarchy = make_hierarchy("pki")
    before = await server_factory(hierarchy)
    client = await registered(before)
    created = await client.new_order(NAME, profile="client")
    order, order_url = await ready_order(before, client, NAME, created=created)
    await before.store.close()
    after = await server_factory(
        hierarchy, **{"profiles.client": {"allowed_domains": ["workers.bluerobin.local"]}})
    same_account = after.client(key=client.key, kid=client.kid)
    response, _ = await finalize(same_account, order, NAME)
    doc = assert_problem(response, 400, "rejectedIdentifier")
    assert "outside the domains of profile client" in doc["detail"], doc
    assert (await same_account.post(order_url)).json()["status"] == "invalid"
    await after.store.close()


async def test_finalize_refuses_a_type_as_new_order_would_for_an_order_naming_none(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any],
        make_csr: Callable[..., x509.CertificateSigningRequest]) -> None:
    """An order that named no profile, its identifier's type since dropped by the
    default profile: newOrder now answers rejectedIdentifier (the client asked for no
    profile, RFC 8555 6.7), and so does finalize of the order made before (7.1.6), not
    invalidProfile: a finalize request names no profile, so draft-ietf-acme-profiles 4's
    "incompatible with the rest of the request" cannot be it, and the CA still issues
    under the profile."""
    hierarchy = make_hierarchy("ip-pki", permitted_domains=None)
    before = await ip_server(server_factory, hierarchy)
    client = await registered(before)
    order, order_url = await ready_order(before, client, identifiers=[IP])
    await before.store.close()
    after = await ip_server(server_factory, hierarchy, server={"identifier_types": ["dns"]})
    same_account = after.client(key=client.key, kid=client.kid)
    assert_problem(await order_ip(same_account), 400, "rejectedIdentifier")
    csr = make_csr(extra=(x509.IPAddress(ip_address(IP["value"])),))
    response, _ = await finalize(same_account, order, csr=csr)
    doc = assert_problem(response, 400, "rejectedIdentifier")
    assert "profile server does not issue for ip identifiers" in doc["detail"], doc
    assert (await same_account.post(order_url)).json()["status"] == "invalid"
    await after.store.close()
