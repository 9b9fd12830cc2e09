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
from acme_ca.authority.crls import CrlPublisher
from acme_ca.authority.published_crls import PublishedCrls
from acme_ca.clock import FakeClock
from acme_ca.config import PolicyConfig
from acme_ca.domain.models import CrlRecord
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.publication import Publication
from acme_ca.store import Store, open_store
from tests.relay import Relay
from tests.store.pg import pg_url, through  # noqa: F401

BASE = "http://127.0.0.1:8556"
LIFETIME = timedelta(hours=24)
BACKDATE = PolicyConfig().backdate


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


async def serving(issuer: Issuer, store: Store, aiohttp_client: Any,
                  read_from: Any = None) -> Listener:
    """The publisher writing to `store` and the listener reading from `read_from`
    (`store` itself unless given), an hour into the issuer's life."""
    clock = FakeClock(issuer.certificate.not_valid_before_utc + timedelta(hours=1))
    publisher = CrlPublisher(store, clock, lambda: issuer, Publication(BASE), LIFETIME,
                             backdate=BACKDATE)
    crls = PublishedCrls(read_from or store, lambda: issuer, clock)
    app = create_publication_app(crls, clock)
    return Listener(await aiohttp_client(app), issuer, clock, publisher)


@pytest.fixture
async def listener(issuer: Issuer, store: Store, aiohttp_client: Any) -> Listener:
    return await serving(issuer, store, aiohttp_client)


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
    """RFC 9111 5.2.2.1 max-age: at most http_cache.MAX_AGE, never past nextUpdate; 0 once
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
    """RFC 9110 13.1.2 If-None-Match (weak comparison too): 304 without a body; a new
    CRL (another ETag) is sent in full. A CRL is revalidated by its number only (its
    thisUpdate may go back, authority/crls.py): If-Modified-Since (13.1.3) gets the CRL
    in full, and a 304 only for the certificate."""
    await listener.publisher.publish()
    path = f"/crl/{listener.short}.crl"
    first = await listener.client.get(path)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    same = await listener.client.get(path, headers={"If-None-Match": etag})
    assert (same.status, await same.read()) == (304, b"")
    weak = await listener.client.get(path, headers={"If-None-Match": f'"x", W/{etag}'})
    assert weak.status == 304
    assert (await listener.client.get(path, headers={"If-Modified-Since": modified})).status == 200
    cert = await listener.client.get(f"/ca/{listener.short}.crt")
    assert (await listener.client.get(f"/ca/{listener.short}.crt", headers={
        "If-Modified-Since": cert.headers["Last-Modified"]})).status == 304
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
        listener = await serving(issuer, store, aiohttp_client)
        await listener.publisher.publish()
        client = listener.client
        path = f"/crl/{listener.short}.crl"
        await relay.cut()
        response = await client.get(path)
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        assert (await response.text()).count("\n") == 1
        await relay.mend()
        assert (await client.get(path)).status == 200
    finally:
        await store.close()


class Counting:
    """The store, counting the CRL reads that carry the DER."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.reads = inner, 0

    async def get_crl(self, issuer: str) -> CrlRecord | None:
        self.reads += 1
        return await self.inner.get_crl(issuer)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_relying_parties_read_the_crl_from_the_process_not_the_database(
    issuer: Issuer, store: Store, aiohttp_client: Any
) -> None:
    """RFC 5280 4.2.1.13: anyone may fetch the CRL, unauthenticated; 200 fetches (304s
    too) read its DER from the database once, not 200 times through the pool the ACME
    API shares. A few seconds on, only the number is checked; a new CRL is read once."""
    counting = Counting(store)
    listener = await serving(issuer, store, aiohttp_client, read_from=counting)
    client, clock, publisher = listener.client, listener.clock, listener.publisher
    await publisher.publish()
    path = f"/crl/{listener.short}.crl"
    for _ in range(200):
        assert (await client.get(path, headers={"If-None-Match": '"1"'})).status == 304
    assert counting.reads == 1
    clock.advance(timedelta(seconds=6))
    assert (await client.get(path)).headers["ETag"] == '"1"'
    assert counting.reads == 1
    clock.advance(LIFETIME / 2)
    await publisher.publish()
    assert (await client.get(path)).headers["ETag"] == '"2"'
    assert counting.reads == 2


async def test_the_crl_held_is_served_through_an_outage_until_its_next_update(
    issuer: Issuer, aiohttp_client: Any, pg_url: str, relay: Relay  # noqa: F811
) -> None:
    """RFC 5280 5.1.2.5: a CRL is good until its nextUpdate, whoever serves it. With the
    database cut (a real PostgreSQL behind a relay), a process that holds the CRL
    serves it; once its nextUpdate has passed, 503."""
    store = await open_store(through(pg_url, relay))
    try:
        listener = await serving(issuer, store, aiohttp_client)
        await listener.publisher.publish()
        client, clock = listener.client, listener.clock
        path = f"/crl/{listener.short}.crl"
        assert (await client.get(path)).status == 200
        await relay.cut()
        clock.advance(timedelta(minutes=10))
        assert (await client.get(path)).status == 200
        clock.advance(LIFETIME)
        assert (await client.get(path)).status == 503
        await relay.mend()
    finally:
        await store.close()


async def test_an_unparsable_conditional_header_is_ignored(listener: Listener) -> None:
    """RFC 9110 13.1.3: an invalid If-Modified-Since is ignored (a year past datetime's
    range made a 500 with a traceback); every answer says nosniff; a 404 does not
    repeat what was asked."""
    await listener.publisher.publish()
    huge = {"If-Modified-Since": "Mon, 01 Jan 99999999999 00:00:00 GMT"}
    for path in (f"/crl/{listener.short}.crl", f"/ca/{listener.short}.crt"):
        response = await listener.client.get(path, headers=huge)
        assert response.status == 200, await response.text()
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    probe = "/crl/<script>alert(1)<%2fscript>.crl"
    missing = await listener.client.get(probe)
    assert missing.status == 404
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
    assert "script" not in await missing.text()


async def test_a_crl_whose_this_update_went_back_is_not_hidden_by_a_304(
    listener: Listener,
) -> None:
    """RFC 9110 13.1.3 and 13.2.2: a CRL dated in the future (a lease holder's clock
    ahead) is replaced by one dated now (authority/crls.py): a cache revalidating with
    the old Last-Modified must get the new CRL, not a 304."""
    listener.clock.set_wall(listener.clock.now() + timedelta(seconds=90))
    await listener.publisher.publish()
    path = f"/crl/{listener.short}.crl"
    first = await listener.client.get(path)
    listener.clock.set_wall(listener.clock.now() - timedelta(seconds=89))
    listener.clock.advance(timedelta(seconds=6))
    assert await listener.publisher.publish() == 1
    again = await listener.client.get(path, headers={
        "If-Modified-Since": first.headers["Last-Modified"]})
    assert (again.status, again.headers["ETag"]) == (200, '"2"')


class Broken(Counting):
    """The store, failing every CRL read as a bug would."""

    async def crl_number(self, short: str) -> Any:
        raise RuntimeError("a bug")


async def test_a_failed_request_s_line_names_its_route_not_the_client_s_path(
    issuer: Issuer, store: Store, aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 item 3, review finding F7: the 500 line names the route's template,
    never the decoded path: a client's %0a would forge a line in a text log."""
    listener = await serving(issuer, store, aiohttp_client, read_from=Broken(store))
    response = await listener.client.get(f"/crl/{listener.short}.crl")
    assert response.status == 500
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("acme_ca.api")]
    assert lines and not any(listener.short in line for line in lines), lines
    assert any("GET /crl/{" in line for line in lines), lines
