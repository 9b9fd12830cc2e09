"""OCSP over HTTP (RFC 6960 A.1): POST with the DER request, GET with its base64 in the
path; RFC 5019 6.2 caching headers. On a bare application (``add_routes``), as the
plain-HTTP listener mounts it, in front of a real responder and store."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from acme_ca.api.http_cache import MAX_AGE
from acme_ca.api.ocsp import MAX_REQUEST, add_routes
from acme_ca.authority.ocsp import OcspAnswer, OcspResponder
from tests.authority.ocsp_setup import LIFETIME, Setup, setup  # noqa: F401 (a fixture)
from tests.pki.test_ocsp import NONCE, _extension, _raw_request, _tlv

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def client(setup: Setup, aiohttp_client: Callable[..., Any]) -> Client:  # noqa: F811
    app = web.Application()
    add_routes(app, setup.responder, setup.clock)
    return await aiohttp_client(app)


def _der(leaf: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


async def _read(response: Any) -> ocsp.OCSPResponse:
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(await response.read())


async def test_post_answers_good_with_rfc5019_caching_headers(
        client: Client, setup: Setup) -> None:  # noqa: F811
    """RFC 6960 A.1.1 POST; RFC 5019 6.2: Last-Modified = thisUpdate, Expires =
    nextUpdate, an ETag, Cache-Control max-age no later than nextUpdate (at most
    MAX_AGE)."""
    leaf = await setup.leaf()
    response = await client.post("/ocsp", data=_der(leaf, setup.issuer.certificate),
                                 headers={"Content-Type": "application/ocsp-request"})
    parsed = await _read(response)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD
    headers = response.headers
    assert parsedate_to_datetime(headers["Last-Modified"]) == parsed.this_update_utc
    assert parsedate_to_datetime(headers["Expires"]) == parsed.next_update_utc
    assert headers["ETag"].startswith('"') and len(headers["ETag"]) > 10
    assert headers["Cache-Control"] == (
        f"public, no-transform, must-revalidate, max-age={int(MAX_AGE.total_seconds())}")
    setup.clock.advance(LIFETIME - timedelta(seconds=30))  # 30 s before the cached nextUpdate
    cached = await client.post("/ocsp", data=_der(leaf, setup.issuer.certificate))
    assert (await _read(cached)).certificate_status is ocsp.OCSPCertStatus.GOOD


async def test_get_with_base64_holding_slash_and_plus(client: Client, setup: Setup) -> None:  # noqa: F811
    """RFC 6960 A.1.1 GET {url}/{url-encoding of base-64 encoding of the DER request}:
    a '/' or '+' in the base64 is read right whether escaped (%2F, %2B) or not, and
    the URL-safe alphabet and missing padding are taken too."""
    for _ in range(200):  # until a request's base64 holds both '/' and '+'
        leaf = await setup.leaf()
        text = base64.b64encode(_der(leaf, setup.issuer.certificate)).decode()
        if "/" in text and "+" in text:
            break
    else:
        pytest.fail("no request had both '/' and '+' in its base64")
    urlsafe = base64.urlsafe_b64encode(_der(leaf, setup.issuer.certificate)).decode()
    for path in (text, quote(text, safe=""), quote(text, safe="/+="), urlsafe.rstrip("=")):
        response = await client.get("/ocsp/" + path)
        parsed = await _read(response)
        assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD, path
        assert parsed.serial_number == leaf.serial_number
        assert "max-age=" in response.headers["Cache-Control"]


async def test_what_is_not_a_request_is_malformed_request_not_an_http_error(
        client: Client) -> None:
    """RFC 6960 2.3 malformedRequest, in a 200 application/ocsp-response (A.1.2), for
    a body or a path that is not a request; never cached."""
    for response in (await client.post("/ocsp", data=b"not a request"),
                     await client.post("/ocsp", data=b""),
                     await client.get("/ocsp/%%%not-base64"),
                     await client.get("/ocsp/" + base64.b64encode(b"0\x03\x02\x01\x01").decode()),
                     await client.get("/ocsp/")):
        parsed = await _read(response)
        assert parsed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        assert response.headers["Cache-Control"] == "no-store"


async def test_a_nonce_is_echoed_and_not_cached(client: Client, setup: Setup) -> None:  # noqa: F811
    """RFC 8954 3: the nonce comes back; a response for one request is no-store."""
    leaf = await setup.leaf()
    response = await client.post("/ocsp", data=_der(leaf, setup.issuer.certificate, b"n" * 16))
    parsed = await _read(response)
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
    assert response.headers["Cache-Control"] == "no-store"


async def test_other_methods_and_oversized_bodies_are_http_errors(client: Client) -> None:
    """Not an OCSP exchange at all: 405 with Allow for another method, 413 for a body
    over MAX_REQUEST (announced or not)."""
    put = await client.put("/ocsp", data=b"x")
    assert put.status == 405 and "POST" in put.headers["Allow"]
    delete = await client.delete("/ocsp/AAAA")
    assert delete.status == 405
    big = await client.post("/ocsp", data=b"0" * (MAX_REQUEST + 1))
    assert big.status == 413

    async def chunks() -> Any:
        for _ in range(3):
            yield b"0" * (MAX_REQUEST // 2)

    streamed = await client.post("/ocsp", data=chunks())
    assert streamed.status == 413


async def test_a_request_the_parser_chokes_on_is_malformed_not_a_500(
        client: Client, setup: Setup) -> None:  # noqa: F811
    """RFC 6960 2.3: malformedRequest (HTTP 200, A.1.2) for an extension repeated or a
    negative serial: the client's mistake, never an HTTP 500."""
    leaf = await setup.leaf()
    nonce = _extension(NONCE, _tlv(0x04, b"a" * 16))
    for der in (_raw_request(setup.issuer.certificate, leaf.serial_number, nonce, nonce),
                _raw_request(setup.issuer.certificate, -5)):
        response = await client.post("/ocsp", data=der)
        parsed = await _read(response)
        assert parsed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


async def test_a_post_body_arriving_in_pieces_is_read_whole(
        client: Client, setup: Setup) -> None:  # noqa: F811
    """RFC 6960 A.1.1: the body is the DER request, however the transport cuts it
    (chunked transfer coding, or writes that arrive apart)."""
    leaf = await setup.leaf()
    der = _der(leaf, setup.issuer.certificate)

    async def pieces() -> Any:  # sent with Transfer-Encoding: chunked
        yield der[:20]
        await asyncio.sleep(0.2)
        yield der[20:]

    response = await client.post("/ocsp", data=pieces(),
                                 headers={"Content-Type": "application/ocsp-request"})
    parsed = await _read(response)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.certificate_status is ocsp.OCSPCertStatus.GOOD


class _Broken(OcspResponder):
    async def answer(self, der: bytes) -> OcspAnswer:
        raise RuntimeError("a bug")


async def test_a_failure_of_the_responder_is_internal_error_in_one_line(
        setup: Setup, aiohttp_client: Callable[..., Any],  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    """RFC 6960 2.3 internalError: what the responder itself fails at is still an OCSP
    response (HTTP 200, not cached), logged in one line without a traceback."""
    app = web.Application()
    add_routes(app, _Broken(setup.store, setup.certificates, setup.clock, LIFETIME), setup.clock)
    client = await aiohttp_client(app)
    with caplog.at_level(logging.ERROR):
        response = await client.post("/ocsp", data=b"anything")
    parsed = await _read(response)
    assert parsed.response_status is ocsp.OCSPResponseStatus.INTERNAL_ERROR
    assert response.headers["Cache-Control"] == "no-store"
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is None and "a bug" in record.getMessage()
