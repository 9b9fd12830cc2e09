"""Orders (RFC 8555 7.4 and 7.1.3): creation, identifiers, requested validity, expiry,
finalization and its CSR checks, certificate download, and who may read what."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from acme_ca.domain.models import CertificateStatus, OrderStatus
from acme_ca.errors import PkiError
from acme_ca.pki.issuer import Issuer
from tests.acme_client import BASE, b64, make_csr
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    NEW_ORDER,
    assert_problem,
    authorize,
    finalize,
    leaf_of,
    ready_order,
    registered,
)

NAME = "web.bluerobin.local"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_order_shape(doc: dict[str, Any], status: str) -> None:
    """RFC 8555 7.1.3 (and ACME-NOTES, Posh-ACME#510, pebble#402): every order has
    status, expires, identifiers, authorizations and finalize; certificate only when
    valid."""
    assert doc["status"] == status, doc
    parse_time(doc["expires"])
    assert doc["identifiers"] and all({"type", "value"} <= set(i) for i in doc["identifiers"])
    assert doc["authorizations"] and all(a.startswith(f"{BASE}/acme/authz/")
                                         for a in doc["authorizations"])
    assert doc["finalize"].startswith(f"{BASE}/acme/order/")
    assert ("certificate" in doc) == (status == "valid"), doc


def order_id(order_url: str) -> str:
    return order_url.rsplit("/", 1)[-1]


async def test_new_order_201_location_and_location_on_get(server: AcmeServer) -> None:
    """RFC 8555 7.4: 201 + Location; ACME-NOTES (cert-manager PR #7777): the order's
    POST-as-GET carries Location too."""
    client = await registered(server)
    created = await client.new_order(NAME)
    assert created.status == 201
    location = created.headers["Location"]
    assert location.startswith(f"{BASE}/acme/order/")
    assert created.json()["identifiers"] == [{"type": "dns", "value": NAME}]
    read = await client.post(location)
    assert read.status == 200 and read.headers["Location"] == location
    assert read.json() == created.json()


async def test_order_representation_in_every_status(server: AcmeServer) -> None:
    """RFC 8555 7.1.3 and 7.1.6: pending, ready, processing, valid and invalid orders
    all carry the required fields; "certificate" appears only once valid."""
    client = await registered(server)
    created = await client.new_order(NAME)
    assert_order_shape(created.json(), "pending")
    order, url = await ready_order(server, client, NAME)
    assert_order_shape(order, "ready")
    response, _ = await finalize(client, order, NAME)
    assert_order_shape(response.json(), "valid")
    assert_order_shape((await client.post(url)).json(), "valid")
    _, other_url = await ready_order(server, client, "db.bluerobin.local")
    await server.store.update_order_status(order_id(other_url), expected=OrderStatus.READY,
                                           status=OrderStatus.PROCESSING)
    assert_order_shape((await client.post(other_url)).json(), "processing")
    server.clock.advance(timedelta(days=8))
    client.nonce = None  # the cached nonce expired with the clock (RFC 8555 6.5)
    assert_order_shape((await client.post(created.headers["Location"])).json(), "invalid")


async def test_identifier_outside_policy_is_rejected(server: AcmeServer) -> None:
    """RFC 8555 7.4 and 6.7.1: a name outside policy is rejectedIdentifier, with a
    subproblem naming the identifier."""
    client = await registered(server)
    doc = assert_problem(await client.new_order("example.com"), 400, "rejectedIdentifier")
    assert [s["identifier"] for s in doc["subproblems"]] == [
        {"type": "dns", "value": "example.com"}]
    assert doc["subproblems"][0]["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"


async def test_two_bad_identifiers_give_two_subproblems(server: AcmeServer) -> None:
    """RFC 8555 6.7.1: each refused identifier has its own subproblem."""
    client = await registered(server)
    response = await client.new_order("example.com", NAME, "evil.example.org")
    doc = assert_problem(response, 400, "rejectedIdentifier")
    assert sorted(s["identifier"]["value"] for s in doc["subproblems"]) == [
        "evil.example.org", "example.com"]
    listing = await client.post(f"{client.kid}/orders")
    assert listing.json()["orders"] == []  # nothing was created


async def test_unsupported_identifier_type(server: AcmeServer) -> None:
    """RFC 8555 7.4 and 6.7: an identifier type the server does not support is
    unsupportedIdentifier."""
    client = await registered(server)
    response = await client.post(NEW_ORDER, {"identifiers": [{"type": "email",
                                                              "value": "a@bluerobin.local"}]})
    doc = assert_problem(response, 400, "unsupportedIdentifier")
    assert doc["subproblems"][0]["identifier"] == {"type": "email", "value": "a@bluerobin.local"}


async def test_ip_identifier_outside_allowed_networks_is_rejected(server: AcmeServer) -> None:
    """RFC 8738 3 with [policy] allowed_ip_networks empty by default: rejectedIdentifier."""
    client = await registered(server)
    response = await client.post(NEW_ORDER, {"identifiers": [{"type": "ip",
                                                              "value": "10.0.0.1"}]})
    doc = assert_problem(response, 400, "rejectedIdentifier")
    assert doc["subproblems"][0]["identifier"] == {"type": "ip", "value": "10.0.0.1"}


@pytest.mark.parametrize("identifiers", [[], None, "web.bluerobin.local", [{"type": "dns"}]])
async def test_missing_or_broken_identifiers_are_malformed(server: AcmeServer,
                                                           identifiers: Any) -> None:
    """RFC 8555 7.4: "identifiers" is a non-empty array of identifier objects."""
    client = await registered(server)
    payload = {} if identifiers is None else {"identifiers": identifiers}
    assert_problem(await client.post(NEW_ORDER, payload), 400, "malformed")


@pytest.mark.parametrize("with_not_before", [False, True])
async def test_requested_validity_is_honoured(server: AcmeServer,
                                              with_not_before: bool) -> None:
    """RFC 8555 7.1.3 and 7.4: notBefore/notAfter within policy are accepted, echoed in
    the order, and the certificate has the requested notAfter."""
    client = await registered(server)
    start = server.clock.now().replace(microsecond=0) + timedelta(hours=1)
    not_after = start + timedelta(days=10)
    extra = {"notAfter": not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if with_not_before:
        extra["notBefore"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    created = await client.new_order(NAME, **extra)
    assert created.status == 201, created.body
    assert parse_time(created.json()["notAfter"]) == not_after
    await authorize(server, client, created.json())
    response, _ = await finalize(client, created.json(), NAME)
    assert response.status == 200, response.body
    pem = await client.post(response.json()["certificate"])
    assert leaf_of(pem.body).not_valid_after_utc == not_after


@pytest.mark.parametrize("window", ["beyond_max", "after_before_before", "after_in_past"])
async def test_bad_requested_validity_is_malformed(server: AcmeServer, window: str) -> None:
    """RFC 8555 7.4: a validity the server will not issue (longer than policy allows,
    notAfter not after notBefore) is refused as malformed."""
    client = await registered(server)
    now = server.clock.now().replace(microsecond=0)
    before, after = {
        "beyond_max": (now, now + timedelta(days=91)),
        "after_before_before": (now + timedelta(days=2), now + timedelta(days=1)),
        "after_in_past": (None, now - timedelta(hours=1)),
    }[window]
    extra = {"notAfter": after.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if before is not None:
        extra["notBefore"] = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert_problem(await client.new_order(NAME, **extra), 400, "malformed")


async def test_order_expires(server: AcmeServer) -> None:
    """RFC 8555 7.1.3 and 7.1.6: past its "expires" a pending order is invalid."""
    client = await registered(server)
    created = await client.new_order(NAME)
    expires = parse_time(created.json()["expires"])
    server.clock.advance(expires - server.clock.now() - timedelta(seconds=5))
    client.nonce = None  # the cached nonce expired with the clock (RFC 8555 6.5)
    assert (await client.post(created.headers["Location"])).json()["status"] == "pending"
    server.clock.advance(timedelta(seconds=10))
    doc = (await client.post(created.headers["Location"])).json()
    assert doc["status"] == "invalid" and doc["error"]


async def test_a_pending_order_whose_authorizations_are_all_valid_is_ready_when_read(
        server: AcmeServer) -> None:
    """RFC 8555 7.1.6: "Once all of the authorizations listed in the order object are in
    the 'valid' state, the order transitions to the 'ready' state." The store does it
    when the last one is validated; reading the order does it as well (the same rule,
    domain/states.py, by a compare-and-set), whatever left the order pending."""
    client = await registered(server)
    _, url = await ready_order(server, client, NAME)
    await server.store.update_order_status(order_id(url), expected=OrderStatus.READY,
                                           status=OrderStatus.PENDING)
    assert (await client.post(url)).json()["status"] == "ready"
    assert (await server.store.get_order(order_id(url))).status is OrderStatus.READY


async def test_finalize_before_ready_is_order_not_ready(server: AcmeServer) -> None:
    """RFC 8555 7.4: finalizing a pending order is 403 orderNotReady."""
    client = await registered(server)
    created = await client.new_order(NAME)
    response, _ = await finalize(client, created.json(), NAME)
    assert_problem(response, 403, "orderNotReady")
    assert (await client.post(created.headers["Location"])).json()["status"] == "pending"


async def test_csr_with_other_names_is_bad_csr_and_order_stays_ready(
        server: AcmeServer) -> None:
    """RFC 8555 7.4: the CSR must name exactly the order's identifiers, else badCSR; the
    order stays ready and a correct CSR then succeeds."""
    client = await registered(server)
    order, url = await ready_order(server, client, NAME)
    for names in (["db.bluerobin.local"], [NAME, "db.bluerobin.local"]):
        response, _ = await finalize(client, order, *names)
        assert_problem(response, 400, "badCSR")
        assert (await client.post(url)).json()["status"] == "ready"
    response, _ = await finalize(client, order, NAME)
    assert response.status == 200 and response.json()["status"] == "valid"


async def test_csr_signed_with_the_account_key_is_bad_csr(server: AcmeServer) -> None:
    """RFC 8555 7.4 and 11.1: the certificate key must differ from the account key."""
    client = await registered(server)
    order, _ = await ready_order(server, client, NAME)
    response, _ = await finalize(client, order, NAME, csr_key=client.key)
    assert_problem(response, 400, "badCSR")


@pytest.mark.parametrize(("csr", "kind"), [
    ("not base64!", "malformed"), ("AAAA====", "malformed"), (None, "malformed"),
    (b64(b"garbage, not DER"), "badCSR")])
async def test_unreadable_csr(server: AcmeServer, csr: str | None, kind: str) -> None:
    """RFC 8555 7.4: "csr" is the base64url DER of a CSR; otherwise malformed or badCSR."""
    client = await registered(server)
    order, url = await ready_order(server, client, NAME)
    response = await client.post(order["finalize"], {} if csr is None else {"csr": csr})
    assert_problem(response, 400, kind)
    assert (await client.post(url)).json()["status"] == "ready"


async def test_csr_with_weak_rsa_key_is_bad_csr(server: AcmeServer) -> None:
    """RFC 8555 7.4: a CSR the CA will not sign (RSA 1024) is badCSR."""
    client = await registered(server)
    order, _ = await ready_order(server, client, NAME)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    csr, _ = make_csr([NAME], key=weak)  # type: ignore[arg-type]
    response = await client.post(order["finalize"], {"csr": b64(csr)})
    doc = assert_problem(response, 400, "badCSR")
    assert "1024" in doc["detail"]


async def test_certificate_download_is_leaf_then_intermediate(server: AcmeServer) -> None:
    """RFC 8555 7.4.2: application/pem-certificate-chain, the leaf first, then the
    intermediate; the root is not sent."""
    client = await registered(server)
    order, _ = await ready_order(server, client, NAME)
    response, csr_key = await finalize(client, order, NAME)
    download = await client.post(response.json()["certificate"])
    assert download.status == 200
    assert download.headers["Content-Type"].split(";")[0] == "application/pem-certificate-chain"
    certs = x509.load_pem_x509_certificates(download.body)
    assert len(certs) == 2
    assert certs[0].public_key() == csr_key.public_key()
    assert certs[1] == server.issuer.certificate
    assert all(c.subject != c.issuer for c in certs)  # no self-signed root


async def test_another_account_cannot_read_order_or_certificate(server: AcmeServer) -> None:
    """RFC 8555 7.4 and 7.4.2: an order and its certificate belong to their account;
    another account gets 403 unauthorized."""
    alice = await registered(server)
    mallory = await registered(server)
    order, url = await ready_order(server, alice, NAME)
    assert_problem(await mallory.post(url), 403, "unauthorized")
    stolen, _ = await finalize(mallory, order, NAME)
    assert_problem(stolen, 403, "unauthorized")
    response, _ = await finalize(alice, order, NAME)
    assert_problem(await mallory.post(response.json()["certificate"]), 403, "unauthorized")
    assert (await alice.post(response.json()["certificate"])).status == 200


async def test_processing_order_carries_retry_after(server: AcmeServer) -> None:
    """RFC 8555 7.4: a processing order tells the client when to poll (Retry-After)."""
    client = await registered(server)
    order, url = await ready_order(server, client, NAME)
    await server.store.update_order_status(order_id(url), expected=OrderStatus.READY,
                                           status=OrderStatus.PROCESSING)
    read = await client.post(url)
    assert read.status == 200 and read.json()["status"] == "processing"
    assert read.headers["Retry-After"] == "1"
    early, _ = await finalize(client, order, NAME)
    assert_problem(early, 403, "orderNotReady")
    assert early.headers["Retry-After"] == "1"


async def test_a_signing_failure_invalidates_the_order(server: AcmeServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 8555 7.1.6 (processing -> invalid) and 6.7 serverInternal: when signing fails
    the client gets a 500 problem without internals, the order becomes invalid with that
    error, and the serial reserved before signing stays on record (never reused)."""
    client = await registered(server)
    order, order_url = await ready_order(server, client, "web.bluerobin.local")

    def broken(self: Issuer, request: Any) -> Any:
        raise RuntimeError("HSM unplugged")

    monkeypatch.setattr(Issuer, "issue", broken)
    response, _ = await finalize(client, order, "web.bluerobin.local")
    doc = assert_problem(response, 500, "serverInternal")
    assert "HSM" not in doc["detail"]
    after = (await client.post(order_url)).json()
    assert after["status"] == "invalid" and after["error"]["type"].endswith(":serverInternal")
    assert "certificate" not in after
    (record,) = await server.store.list_certificates()
    assert record.status is CertificateStatus.RESERVED and record.order_id


async def test_a_token_that_cannot_sign_is_logged_in_one_line(
    server: AcmeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A signer's own failure (PkiError: what a PKCS#11 token out of reach raises, at
    every finalize while it is away) is the server's, said as one error line with its
    message, not a traceback as for a bug; the client still gets serverInternal."""
    client = await registered(server)
    order, _ = await ready_order(server, client, "web.bluerobin.local")
    failure = "the PKCS#11 token pkcs11:token=acme-ca failed: ObjectHandleInvalid"

    def token_away(self: Issuer, request: Any) -> Any:
        raise PkiError(failure)

    monkeypatch.setattr(Issuer, "issue", token_away)
    with caplog.at_level(logging.ERROR, logger="acme_ca"):
        response, _ = await finalize(client, order, "web.bluerobin.local")
    assert_problem(response, 500, "serverInternal")
    (logged,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failure in logged.getMessage() and logged.exc_info is None
