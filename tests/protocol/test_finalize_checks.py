"""Finalize (RFC 8555 7.4): what a CSR and an order's requested validity must satisfy
before anything reaches the signer, and the problem each refusal carries."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests import der
from tests.acme_client import b64
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    assert_problem,
    authorize,
    finalize,
    leaf_of,
    ready_order,
    registered,
)

NAME = "web.bluerobin.local"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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


# --- item 4: nothing unsignable reaches the signer --------------------------------------


async def test_common_name_longer_than_64_is_left_out(server: AcmeServer) -> None:
    """RFC 5280 A.1 (ub-common-name 64): a longer common name cannot be encoded, so,
    as Boulder does, the certificate has no common name and the name is only its
    (then critical, RFC 5280 4.2.1.6) subjectAltName."""
    client = await registered(server)
    long_name = "a" * 60 + ".bluerobin.local"
    order, _ = await ready_order(server, client, long_name)
    response = await client.post(order["finalize"],
                                 {"csr": b64(csr(dns=[long_name], common_name=long_name))})
    assert response.status == 200, response.body
    leaf = leaf_of((await client.post(response.json()["certificate"])).body)
    assert leaf.subject == x509.Name([])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and san.value.get_values_for_type(x509.DNSName) == [long_name]


async def test_long_common_name_must_still_be_a_san(server: AcmeServer) -> None:
    """RFC 8555 7.4: a too-long common name is left out only if it is one of the
    order's names; any other common name is badCSR."""
    client = await registered(server)
    order, _ = await ready_order(server, client, NAME)
    other = "b" * 60 + ".bluerobin.local"
    response = await client.post(order["finalize"],
                                 {"csr": b64(csr(dns=[NAME], common_name=other))})
    assert_problem(response, 400, "badCSR")


async def test_requested_not_after_passed_before_finalize(server: AcmeServer) -> None:
    """RFC 8555 7.1.3 (notAfter) and 7.1.6: an order whose requested notAfter has
    passed can never be fulfilled: it is invalid (error: malformed), finalize gets
    orderNotReady, and nothing is signed or reserved."""
    client = await registered(server)
    now = server.clock.now()
    created = await client.new_order(NAME, notAfter=rfc3339(now + timedelta(hours=1)))
    assert created.status == 201, created.body
    await authorize(server, client, created.json())
    server.clock.advance(timedelta(hours=2))
    client.nonce = None  # the cached nonce expired with the clock (RFC 8555 6.5)
    response, _ = await finalize(client, created.json(), NAME)
    assert_problem(response, 403, "orderNotReady")
    doc = (await client.post(created.headers["Location"])).json()
    assert doc["status"] == "invalid" and doc["error"]["type"].endswith(":malformed")
    assert await server.store.list_certificates() == []
    # 7.1.3 "expires": the server says in advance when it will consider the order invalid
    assert datetime.fromisoformat(doc["expires"]) <= now + timedelta(hours=1)


async def test_backdate_never_lengthens_a_requested_window(server: AcmeServer) -> None:
    """RFC 8555 7.1.3: a notAfter exactly max_validity away (allowed) with no notBefore:
    the backdate is taken from inside the window, so the certificate lives at most
    [policy] max_validity (90 days here)."""
    client = await registered(server)
    now = server.clock.now().replace(microsecond=0)
    not_after = now + timedelta(days=90)
    order, _ = await ready_order(server, client, NAME)
    created = await client.new_order(NAME, notAfter=rfc3339(not_after))
    assert created.status == 201, created.body
    order = (await client.post(created.headers["Location"])).json()
    response, _ = await finalize(client, order, NAME)
    assert response.status == 200, response.body
    leaf = leaf_of((await client.post(response.json()["certificate"])).body)
    assert leaf.not_valid_after_utc == not_after
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(days=90)
    assert leaf.not_valid_before_utc <= now


async def test_window_after_the_intermediate_expires_is_refused(server: AcmeServer) -> None:
    """RFC 8555 7.1.3 and RFC 5280 4.1.2.5: a requested window that starts after the
    intermediate's notAfter cannot be signed (the leaf would end before it begins):
    newOrder refuses it as malformed."""
    client = await registered(server)
    start = server.issuer.certificate.not_valid_after_utc + timedelta(days=1)
    response = await client.new_order(NAME, notBefore=rfc3339(start),
                                      notAfter=rfc3339(start + timedelta(days=1)))
    assert_problem(response, 400, "malformed")


async def test_certificate_never_starts_days_before_it_is_signed(server: AcmeServer) -> None:
    """RFC 8555 7.1.3 (notBefore) and 7.4: an order created with notBefore = now,
    validated nearly 7 days later and finalized 3 hours after that. Its certificate
    starts at most [policy] backdate (1 minute) before it was signed, not 7 days back,
    before the identifier was even validated; it lasts the default 7 days from there."""
    client = await registered(server)
    created_at = server.clock.now().replace(microsecond=0)
    created = await client.new_order(NAME, notBefore=rfc3339(created_at))
    assert created.status == 201, created.body
    server.clock.advance(timedelta(days=6, hours=20))
    client.nonce = None  # the cached nonce expired with the clock (RFC 8555 6.5)
    validated_at = server.clock.now()
    await authorize(server, client, created.json())
    server.clock.advance(timedelta(hours=3))
    client.nonce = None
    signed_at = server.clock.now().replace(microsecond=0)
    response, _ = await finalize(client, created.json(), NAME)
    assert response.status == 200, response.body
    leaf = leaf_of((await client.post(response.json()["certificate"])).body)
    assert leaf.not_valid_before_utc > validated_at
    assert leaf.not_valid_before_utc >= signed_at - timedelta(minutes=1)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=7)


async def test_a_common_name_that_is_not_text_is_bad_csr(server: AcmeServer) -> None:
    """RFC 8555 7.4 (badCSR) and RFC 5280 4.1.2.6: a CSR whose common name is a
    UTF8String of invalid UTF-8 is refused as badCSR, not a 500, and the order stays
    ready."""
    client = await registered(server)
    order, url = await ready_order(server, client, NAME)
    bad = der.csr(der.subject(b"\xff\xfeweb", der.UTF8_STRING), der.dns_sans(NAME))
    response = await client.post(order["finalize"], {"csr": b64(bad)})
    assert_problem(response, 400, "badCSR")
    assert (await client.post(url)).json()["status"] == "ready"


async def test_a_name_folded_from_unicode_is_bad_csr(server: AcmeServer) -> None:
    """RFC 5280 4.2.1.6 (a dNSName is IA5String, ASCII) and RFC 8555 7.4: a dNSName
    "\u212a.bluerobin.local" (KELVIN SIGN) is not the order's k.bluerobin.local, though
    Unicode lower() makes it so: badCSR, the order stays ready."""
    client = await registered(server)
    order, url = await ready_order(server, client, "k.bluerobin.local")
    kelvin = der.csr(der.subject(None), der.dns_sans("\u212a.bluerobin.local"))
    response = await client.post(order["finalize"], {"csr": b64(kelvin)})
    assert_problem(response, 400, "badCSR")
    assert (await client.post(url)).json()["status"] == "ready"


async def test_refinalize_with_a_key_nobody_knows_is_order_not_ready(
        server: AcmeServer) -> None:
    """RFC 8555 7.4 (orderNotReady for an order that is not ready): a finalize of a
    valid order whose CSR key is of an algorithm cryptography cannot load (GOST R
    34.10-2001) is not the same key as the certificate's, so orderNotReady, not a 500."""
    client = await registered(server)
    order, _ = await ready_order(server, client, NAME)
    response, _ = await finalize(client, order, NAME)
    assert response.status == 200, response.body
    unknown = der.csr(der.subject(None), spki=der.unknown_key_spki())
    response = await client.post(order["finalize"], {"csr": b64(unknown)})
    assert_problem(response, 403, "orderNotReady")


async def test_a_pem_csr_is_bad_csr(server: AcmeServer) -> None:
    """RFC 8555 7.4: "csr" is the base64url encoding of the DER CSR. The base64url of a
    PEM CSR, with text before it or not, is badCSR, and the order stays ready."""
    client = await registered(server)
    order, url = await ready_order(server, client, NAME)
    pem = x509.load_der_x509_csr(csr(dns=[NAME])).public_bytes(Encoding.PEM)
    for body in (pem, b"garbage before\n" + pem):
        response = await client.post(order["finalize"], {"csr": b64(body)})
        assert_problem(response, 400, "badCSR")
    assert (await client.post(url)).json()["status"] == "ready"
