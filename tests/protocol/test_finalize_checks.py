"""Finalize (RFC 8555 7.4): what a CSR and an order's requested validity must satisfy
before anything reaches the signer, and the problem each refusal carries."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.acme_client import b64
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    assert_problem,
    leaf_of,
    ready_order,
    registered,
)

NAME = "web.bluerobin.local"


def csr(dns: Sequence[str] = (), ips: Sequence[str] = (),
        common_name: str | None = None) -> bytes:
    """A DER CSR with these SANs; the common name is written even when longer than
    RFC 5280's ub-common-name (cryptography only warns when told not to validate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    attributes = []
    if common_name is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name,
                                                 _validate=False))
    request = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
               .add_extension(x509.SubjectAlternativeName(names), critical=False)
               .sign(key, hashes.SHA256()))
    return request.public_bytes(Encoding.DER)


@pytest.fixture
async def ip_server(server_factory: Callable[..., Any],
                    make_hierarchy: Callable[..., Any]) -> AsyncIterator[AcmeServer]:
    """A CA whose intermediate has no name constraints and whose policy allows
    10.0.0.0/8 and fd00::/8 (RFC 8738 IP identifiers)."""
    server = await server_factory(
        make_hierarchy("ip-pki", permitted_domains=None),
        **{"policy.allowed_ip_networks": ["10.0.0.0/8", "fd00::/8"]})
    yield server
    await server.store.close()


# --- item 3: identifiers are (type, value) ----------------------------------------------


async def test_dns_san_spelling_an_ip_does_not_satisfy_an_ip_order(
        ip_server: AcmeServer) -> None:
    """RFC 8738 3 and RFC 8555 7.4: an "ip" identifier is matched by an iPAddress SAN;
    a dNSName that reads "10.0.0.5" is another identifier, so the CSR is badCSR and
    the order stays ready."""
    client = await registered(ip_server)
    order, url = await ready_order(ip_server, client,
                                   identifiers=[{"type": "ip", "value": "10.0.0.5"}])
    response = await client.post(order["finalize"], {"csr": b64(csr(dns=["10.0.0.5"]))})
    assert_problem(response, 400, "badCSR")
    assert (await client.post(url)).json()["status"] == "ready"
    response = await client.post(order["finalize"], {"csr": b64(csr(ips=["10.0.0.5"]))})
    assert response.status == 200, response.body


async def test_common_name_is_compared_by_type_and_address(ip_server: AcmeServer) -> None:
    """RFC 8555 7.4 (the CSR names exactly the order's identifiers), RFC 8738 3
    (addresses, not spellings) and RFC 5952 4 (the canonical text): a common name that
    reads as an IP address must be one of the iPAddress SANs; "FD00:0:0::5" is the SAN
    fd00::5, and the certificate carries the canonical form."""
    client = await registered(ip_server)
    order, _ = await ready_order(ip_server, client, identifiers=[
        {"type": "dns", "value": NAME}, {"type": "ip", "value": "10.0.0.5"},
        {"type": "ip", "value": "fd00::5"}])
    ips = ["10.0.0.5", "fd00:0000::5"]
    response = await client.post(order["finalize"], {
        "csr": b64(csr(dns=[NAME], ips=ips, common_name="10.0.0.6"))})
    assert_problem(response, 400, "badCSR")
    response = await client.post(order["finalize"], {
        "csr": b64(csr(dns=[NAME], ips=ips, common_name="FD00:0:0::5"))})
    assert response.status == 200, response.body
    leaf = leaf_of((await client.post(response.json()["certificate"])).body)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "fd00::5"
