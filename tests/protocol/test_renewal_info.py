"""ACME Renewal Information (RFC 9773 3, 4): the directory's renewalInfo, the suggested
window of a fresh, a revoked and a marked certificate, Retry-After, and the CertIDs
that are not one (malformed) or name no certificate of this CA (404)."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.domain.models import CertificateStatus, serial_hex
from acme_ca.pki.issuer import Issuer
from tests.acme_client import BASE, AcmeTestClient, Response, b64
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    REVOKE,
    assert_problem,
    cert_id,
    finalize,
    issue,
    leaf_of,
    ready_order,
    registered,
)

NAME = "web.bluerobin.local"
RENEWAL_INFO = "/acme/renewal-info"


def aki_part(cert: x509.Certificate) -> str:
    return cert_id(cert).split(".")[0]


def when(text: str) -> datetime:
    assert text.endswith("Z"), text  # RFC 3339, UTC
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


async def get(http: TestClient, path: str) -> tuple[int, Any, Any]:
    response = await http.get(path)
    return response.status, response.headers, await response.json(content_type=None)


async def refused(server: AcmeServer, cert_id_text: str, status: int) -> None:
    """A problem (malformed, RFC 8555 6.7), with Retry-After (RFC 9773 4.3: a client
    waits as long after an error) and, as every renewalInfo GET, no nonce."""
    response = await server.http.get(f"{RENEWAL_INFO}/{cert_id_text}")
    answer = Response(response.status, response.headers, await response.read())
    assert_problem(answer, status, "malformed", nonce=False)
    assert int(response.headers["Retry-After"]) >= 60
    assert "Replay-Nonce" not in response.headers


async def window_of(server: AcmeServer, cert: x509.Certificate
                    ) -> tuple[datetime, datetime, int]:
    status, headers, doc = await get(server.http, f"{RENEWAL_INFO}/{cert_id(cert)}")
    assert status == 200, doc
    assert "Replay-Nonce" not in headers  # a GET, polled: RFC 8555 6.5 asks none
    assert headers["Content-Type"].startswith("application/json")
    start, end = when(doc["suggestedWindow"]["start"]), when(doc["suggestedWindow"]["end"])
    assert start < end, doc  # 4.2: a window whose end is not after its start is invalid
    return start, end, int(headers["Retry-After"])


async def issued(server: AcmeServer, client: AcmeTestClient | None = None
                 ) -> tuple[x509.Certificate, AcmeTestClient]:
    client = client or await registered(server)
    _, pem = await issue(server, client, NAME)
    return leaf_of(pem), client


async def test_the_directory_names_renewal_info(server: AcmeServer) -> None:
    """RFC 9773 3: renewalInfo in the directory, the base a CertID is appended to."""
    directory = await server.client().directory()
    assert directory["renewalInfo"] == f"{BASE}{RENEWAL_INFO}"


async def test_a_fresh_certificate_renews_at_two_thirds_of_its_lifetime(
        server_factory) -> None:
    """RFC 9773 4.2: a 24-hour certificate's window is around hour 16 (two thirds), a
    fifteenth of the lifetime wide (96 minutes), ending well before expiry; Retry-After
    (4.3) at most the window's width, ±10 %."""
    server = await server_factory(**{"policy.default_validity": "24h"})
    cert, _ = await issued(server)
    start, end, retry_after = await window_of(server, cert)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == timedelta(hours=24)
    middle = cert.not_valid_before_utc + timedelta(hours=16)
    assert abs((start + (end - start) / 2) - middle) <= timedelta(seconds=1)
    assert abs((end - start) - timedelta(minutes=96)) <= timedelta(seconds=2)
    assert end < cert.not_valid_after_utc - timedelta(hours=7)
    assert 96 * 60 * 0.9 <= retry_after <= 96 * 60 * 1.1
    await server.store.close()


async def test_retry_after_is_the_configured_interval_jittered(server_factory) -> None:
    """RFC 9773 4.3.1: the server's polling interval ([revocation]
    renewal_info_retry_after), jittered within ±10 % so that clients drift apart."""
    server = await server_factory(**{"revocation.renewal_info_retry_after": "20m"})
    cert, _ = await issued(server)
    seen = {(await window_of(server, cert))[2] for _ in range(25)}
    assert all(1080 <= s <= 1320 for s in seen), seen
    assert len(seen) > 1, "Retry-After is not jittered"
    await server.store.close()


async def test_a_revoked_certificate_gets_a_window_in_the_past(server: AcmeServer) -> None:
    """RFC 9773 4.2 (step 3): a window in the past means renew now; a revoked
    certificate (RFC 8555 7.6) is to be replaced at once."""
    cert, client = await issued(server)
    revoked = await client.post(REVOKE, {"certificate": b64(cert.public_bytes(Encoding.DER))})
    assert revoked.status == 200, revoked.body
    server.clock.advance(timedelta(seconds=1))
    _, end, _ = await window_of(server, cert)
    assert end <= server.clock.now()


async def test_a_certificate_the_operator_marked_gets_a_window_in_the_past(
        server: AcmeServer) -> None:
    """RFC 9773 4.2: `acme-ca certs renew-early` (the store's mark) moves the window
    into the past; another certificate keeps its ordinary window."""
    marked, client = await issued(server)
    other, _ = await issued(server, client)
    before = await window_of(server, marked)
    assert before[0] > server.clock.now()
    await server.store.mark_renew_early(serial_hex(marked.serial_number), server.clock.now())
    server.clock.advance(timedelta(seconds=1))
    _, end, _ = await window_of(server, marked)
    assert end <= server.clock.now()
    assert (await window_of(server, other))[0] > server.clock.now()


def serial_part(octets: bytes) -> str:
    return base64.urlsafe_b64encode(octets).rstrip(b"=").decode()


@pytest.mark.parametrize("make", [
    lambda aki, serial: f"{aki}",  # no dot
    lambda aki, serial: f"{aki}.{serial}.{serial}",
    lambda aki, serial: f".{serial}",
    lambda aki, serial: f"{aki}.",
    lambda aki, serial: f"{aki}=.{serial}",  # padding
    lambda aki, serial: f"{aki}.{serial}==",
    lambda aki, serial: f"{aki}.{serial}%3D",  # padding, percent-encoded
    lambda aki, serial: f"{aki}.{serial[:-1]}+",  # not the url-safe alphabet
    lambda aki, serial: f"{aki}.{serial[:-1]}!",
    lambda aki, serial: f"{aki}.A",  # a length no base64url has
    lambda aki, serial: aki + "." + serial_part(bytes.fromhex("001234")),  # a zero DER forbids
    lambda aki, serial: aki + "." + serial_part(bytes.fromhex("87654321")),  # negative
    lambda aki, serial: aki + "." + serial_part(bytes.fromhex("00")),  # zero
    lambda aki, serial: aki + "." + serial_part(bytes.fromhex("01" * 21)),  # over 20 octets
    lambda aki, serial: serial_part(b"\x01" * 65) + "." + serial,  # a key identifier > 64
    lambda aki, serial: "A" * 5000 + "." + serial,
], ids=["no-dot", "three-parts", "empty-aki", "empty-serial", "padded-aki",
        "padded-serial", "padded-encoded", "plus", "bang", "length", "leading-zero",
        "negative", "zero", "too-long", "long-aki", "huge-aki"])
async def test_a_malformed_cert_id_is_malformed(server: AcmeServer, make: Any) -> None:
    """RFC 9773 4.1: base64url without padding of the AKI keyIdentifier, ".", of the
    serial's DER content octets; anything else is malformed (400), with Retry-After."""
    cert, _ = await issued(server)
    aki, serial = cert_id(cert).split(".")
    await refused(server, make(aki, serial), 400)


async def test_the_rfc_example_cert_id_parses_but_names_no_certificate(
        server: AcmeServer) -> None:
    """RFC 9773 4.1's own example (a serial with the leading zero DER needs) is a
    CertID: an unknown one, 404 (malformed, as Boulder and Pebble answer: RFC 8555
    has no notFound type), with Retry-After."""
    await refused(server, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", 404)


async def test_an_unknown_serial_or_another_cas_aki_is_not_found(server: AcmeServer) -> None:
    """RFC 9773 4.1: the CertID names a certificate by its issuer's key and its serial:
    our AKI with a serial never issued, and our serial under another CA's key
    identifier, name no certificate of this CA."""
    cert, _ = await issued(server)
    aki, serial = cert_id(cert).split(".")
    unknown = serial_part((secrets.randbits(120) | 1 << 120).to_bytes(16, "big"))
    other_aki = b64(secrets.token_bytes(20))
    for path in (f"{aki}.{unknown}", f"{other_aki}.{serial}"):
        await refused(server, path, 404)


async def test_a_serial_reserved_but_never_signed_is_not_found(
        server: AcmeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A serial is reserved before signing (Boulder's issuance cycle); one whose
    signature failed names no certificate: 404."""
    cert, client = await issued(server)
    order, _ = await ready_order(server, client, NAME)

    def unplugged(self: Issuer, request: Any) -> Any:
        raise RuntimeError("HSM unplugged")

    monkeypatch.setattr(Issuer, "issue", unplugged)
    assert (await finalize(client, order, NAME))[0].status == 500
    (reserved,) = await server.store.list_certificates(status=CertificateStatus.RESERVED)
    serial = int(reserved.serial, 16)
    octets = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    await refused(server, f"{aki_part(cert)}.{serial_part(octets)}", 404)


@pytest.mark.parametrize("method", ["POST", "HEAD", "PUT"])
async def test_renewal_info_answers_other_methods_405_naming_get(
        server: AcmeServer, method: str) -> None:
    """RFC 9773 4.1: renewalInfo is fetched with GET (unauthenticated), so another method
    is 405 with Allow: GET (RFC 9110 15.5.6), as a problem naming GET, not the
    "use POST" of the ACME resources (RFC 8555 6.3)."""
    cert, _ = await issued(server)
    response = await server.http.request(method, f"{RENEWAL_INFO}/{cert_id(cert)}")
    assert response.status == 405
    assert response.headers["Allow"] == "GET"
    if method != "HEAD":  # no body to a HEAD
        answer = Response(response.status, response.headers, await response.read())
        doc = assert_problem(answer, 405, "malformed")
        assert "use GET" in doc["detail"] and "POST" not in doc["detail"], doc["detail"]
