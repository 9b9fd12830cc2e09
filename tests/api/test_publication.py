"""The plain-HTTP listener relying parties use (api/publication.py): the CRL and the
issuer certificate at the URLs the leaves carry, with cache headers that respect the
CRL's nextUpdate; a real SQLite store and CRLs the publisher built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from acme_ca.api.publication import create_publication_app
from acme_ca.authority.crls import CrlPublisher, PublishedCrls
from acme_ca.clock import FakeClock
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.publication import Publication
from acme_ca.store import Store, open_store
from tests.relay import Relay
from tests.store.pg import pg_url, through  # noqa: F401

BASE = "http://127.0.0.1:8556"
LIFETIME = timedelta(hours=24)


class Listener:
    def __init__(self, client: Any, issuer: Issuer, clock: FakeClock,
                 publisher: CrlPublisher) -> None:
        self.client = client
        self.issuer = issuer
        self.clock = clock
        self.publisher = publisher
        self.short = issuer.fingerprint[:16]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield opened
    await opened.close()


@pytest.fixture
async def listener(issuer: Issuer, store: Store, aiohttp_client: Any) -> Listener:
    clock = FakeClock(issuer.certificate.not_valid_before_utc + timedelta(hours=1))
    publisher = CrlPublisher(store, clock, lambda: issuer, Publication(BASE), LIFETIME)
    app = create_publication_app(PublishedCrls(store, lambda: issuer), clock)
    return Listener(await aiohttp_client(app), issuer, clock, publisher)


async def test_the_crl_is_served_as_der_with_its_media_type(listener: Listener) -> None:
    """RFC 5280 4.2.1.13: the distribution point's http URL answers a DER CRL
    (application/pkix-crl, RFC 2585 4.2), the one the publisher built."""
    await listener.publisher.publish()
    response = await listener.client.get(f"/crl/{listener.short}.crl")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(await response.read())
    assert crl.issuer == listener.issuer.certificate.subject
    assert crl.is_signature_valid(listener.issuer.certificate.public_key())  # type: ignore[arg-type]
    assert response.headers["ETag"] == '"1"'
    assert parsedate_to_datetime(response.headers["Last-Modified"]) == crl.last_update_utc


async def test_max_age_never_reaches_past_next_update(listener: Listener) -> None:
    """RFC 9111 5.2.2.1 max-age: at most CRL_MAX_AGE, never past nextUpdate; 0 once
    nextUpdate has passed (a builder that stopped), and the CRL is still served."""
    await listener.publisher.publish()
    path = f"/crl/{listener.short}.crl"
    young = await listener.client.get(path)
    assert young.headers["Cache-Control"] == "public, max-age=300"
    stored = x509.load_der_x509_crl(await young.read())
    assert stored.next_update_utc is not None
    listener.clock.advance(stored.next_update_utc - listener.clock.now() - timedelta(seconds=42))
    near = await listener.client.get(path)
    assert near.headers["Cache-Control"] == "public, max-age=42"
    listener.clock.advance(timedelta(minutes=5))
    late = await listener.client.get(path)
    assert (late.status, late.headers["Cache-Control"]) == (200, "public, max-age=0")


async def test_a_conditional_request_that_matches_is_not_modified(listener: Listener) -> None:
    """RFC 9110 13.1.2 If-None-Match, 13.1.3 If-Modified-Since: 304 without a body;
    a new CRL (another ETag) is sent in full."""
    await listener.publisher.publish()
    path = f"/crl/{listener.short}.crl"
    first = await listener.client.get(path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    same = await listener.client.get(path, headers={"If-None-Match": etag})
    assert (same.status, await same.read()) == (304, b"")
    assert (await listener.client.get(path, headers={"If-Modified-Since": modified})).status == 304
    listener.clock.advance(LIFETIME / 2)
    await listener.publisher.publish()
    newer = await listener.client.get(path, headers={"If-None-Match": etag})
    assert (newer.status, newer.headers["ETag"]) == (200, '"2"')
    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(hours=1), usegmt=True)
    assert (await listener.client.get(path, headers={"If-Modified-Since": earlier})).status == 200


async def test_head_answers_the_headers_without_the_body(listener: Listener) -> None:
    """RFC 9110 9.3.2: HEAD as GET, no content."""
    await listener.publisher.publish()
    response = await listener.client.head(f"/crl/{listener.short}.crl")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/pkix-crl"
    assert await response.read() == b""
    assert (await listener.client.head(f"/ca/{listener.short}.crt")).status == 200


async def test_the_issuer_certificate_is_served_as_der(listener: Listener) -> None:
    """RFC 5280 4.2.2.1 caIssuers over http: a DER certificate, application/pkix-cert."""
    response = await listener.client.get(f"/ca/{listener.short}.crt")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/pkix-cert"
    assert x509.load_der_x509_certificate(await response.read()) == listener.issuer.certificate
    assert "max-age=86400" in response.headers["Cache-Control"]


@pytest.mark.parametrize("path", ["/crl/{short}.crl", "/crl/0123456789abcdef.crl",
                                  "/ca/0123456789abcdef.crt"])
async def test_an_unknown_issuer_or_no_crl_yet_is_a_one_line_404(
    listener: Listener, path: str
) -> None:
    """Before the first CRL (no publish here) and for an issuer this CA does not know:
    404, one line of text, not cached."""
    response = await listener.client.get(path.format(short=listener.short))
    assert response.status == 404
    body = await response.text()
    assert body.count("\n") == 1 and body.startswith("no ")
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_database_out_of_reach_is_a_503_in_one_line(
    issuer: Issuer, aiohttp_client: Any, pg_url: str, relay: Relay  # noqa: F811
) -> None:
    """A real outage (the PostgreSQL store behind a relay the test cuts) is no bug:
    503, Retry-After, one line of text; served again once the database is back."""
    store = await open_store(through(pg_url, relay))
    try:
        clock = FakeClock(issuer.certificate.not_valid_before_utc + timedelta(hours=1))
        await CrlPublisher(store, clock, lambda: issuer, Publication(BASE), LIFETIME).publish()
        client = await aiohttp_client(
            create_publication_app(PublishedCrls(store, lambda: issuer), clock))
        path = f"/crl/{issuer.fingerprint[:16]}.crl"
        await relay.cut()
        response = await client.get(path)
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        assert (await response.text()).count("\n") == 1
        await relay.mend()
        assert (await client.get(path)).status == 200
    finally:
        await store.close()
