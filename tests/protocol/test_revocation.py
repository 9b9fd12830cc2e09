"""Revocation (RFC 8555 7.6): reason codes, the three ways to be allowed to revoke,
unknown certificates, and what the store records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from acme_ca.domain.models import CertificateStatus, serial_hex
from tests.acme_client import AcmeTestClient, b64
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    REVOKE,
    assert_problem,
    authorize,
    finalize,
    leaf_of,
    ready_order,
    registered,
)

NAMES = ("web.bluerobin.local", "api.bluerobin.local")


async def issued(server: AcmeServer, client: AcmeTestClient) -> tuple[x509.Certificate, Any]:
    """A certificate for NAMES held by `client`: (certificate, its private key)."""
    order, _ = await ready_order(server, client, *NAMES)
    response, key = await finalize(client, order, *NAMES)
    assert response.status == 200, response.body
    pem = await client.post(response.json()["certificate"])
    return leaf_of(pem.body), key


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


async def assert_revoked(server: AcmeServer, cert: x509.Certificate, reason: int) -> None:
    record = await server.store.get_certificate(serial_hex(cert.serial_number))
    assert record.status is CertificateStatus.REVOKED
    assert record.revocation_reason == reason
    assert record.revoked_at == server.clock.now()


async def assert_not_revoked(server: AcmeServer, cert: x509.Certificate) -> None:
    record = await server.store.get_certificate(serial_hex(cert.serial_number))
    assert record.status is CertificateStatus.ISSUED and record.revocation_reason is None


@pytest.mark.parametrize("reason", [0, 1, 3, 4, 5])
async def test_revoke_with_reason_is_recorded(server: AcmeServer, reason: int) -> None:
    """RFC 8555 7.6: the holding account revokes; the CRLReason (RFC 5280 5.3.1) is
    kept with the revocation. A subscriber may claim unspecified (0), keyCompromise (1),
    affiliationChanged (3), superseded (4) and cessationOfOperation (5)."""
    client = await registered(server)
    cert, _ = await issued(server, client)
    response = await client.post(REVOKE, {"certificate": b64(der(cert)), "reason": reason})
    assert response.status == 200, response.body
    assert response.headers["Replay-Nonce"]
    await assert_revoked(server, cert, reason)


async def test_revoke_without_reason_is_unspecified(server: AcmeServer) -> None:
    """RFC 8555 7.6: "reason" is optional; without it the reason is unspecified (0)."""
    client = await registered(server)
    cert, _ = await issued(server, client)
    assert (await client.post(REVOKE, {"certificate": b64(der(cert))})).status == 200
    await assert_revoked(server, cert, 0)


@pytest.mark.parametrize("reason", [2, 6, 7, 8, 9, 10, 11, -1, 2**64, "1", True, 1.0, None])
async def test_bad_revocation_reason(server: AcmeServer, reason: Any) -> None:
    """RFC 8555 7.6: "The server MAY disallow a subset of reasonCodes ... If a request
    contains a disallowed reasonCode the server MUST reject it with the error type
    badRevocationReason", and the detail SHOULD say which are allowed. Refused: the
    CA's own judgements cACompromise (2), aACompromise (10) and privilegeWithdrawn (9),
    certificateHold (6) and removeFromCRL (8), which a CA that never suspends does not
    use, 7 (unassigned in RFC 5280 5.3.1), codes beyond 10 and what is not an integer.
    Nothing is revoked."""
    client = await registered(server)
    cert, _ = await issued(server, client)
    response = await client.post(REVOKE, {"certificate": b64(der(cert)), "reason": reason})
    doc = assert_problem(response, 400, "badRevocationReason")
    assert "0, 1, 3, 4, 5" in doc["detail"]
    await assert_not_revoked(server, cert)


async def test_revoke_signed_with_the_certificate_key(server: AcmeServer) -> None:
    """RFC 8555 7.6: a request signed by the certificate's key, with that key as "jwk",
    revokes without any account."""
    client = await registered(server)
    cert, cert_key = await issued(server, client)
    stranger = server.client()  # no account at all
    response = await stranger.post(REVOKE, {"certificate": b64(der(cert)), "reason": 1},
                                   key=cert_key, use_jwk=True)
    assert response.status == 200, response.body
    await assert_revoked(server, cert, 1)


async def test_revoke_with_another_key_in_jwk_is_unauthorized(server: AcmeServer) -> None:
    """RFC 8555 7.6: a "jwk" request must be signed by the certificate's own key."""
    client = await registered(server)
    cert, _ = await issued(server, client)
    other = ec.generate_private_key(ec.SECP256R1())
    response = await server.client().post(REVOKE, {"certificate": b64(der(cert))},
                                          key=other, use_jwk=True)
    assert_problem(response, 403, "unauthorized")
    await assert_not_revoked(server, cert)


async def test_revoke_by_account_authorized_for_all_names(server: AcmeServer) -> None:
    """RFC 8555 7.6: another account holding valid authorizations for every name in the
    certificate may revoke it."""
    holder = await registered(server)
    cert, _ = await issued(server, holder)
    other = await registered(server)
    created = await other.new_order(*NAMES)
    await authorize(server, other, created.json())
    response = await other.post(REVOKE, {"certificate": b64(der(cert)), "reason": 3})
    assert response.status == 200, response.body
    await assert_revoked(server, cert, 3)


async def test_revoke_by_account_authorized_for_some_names_is_unauthorized(
        server: AcmeServer) -> None:
    """RFC 8555 7.6: authorizations for only part of the names are not enough; without
    any, an unrelated account is 403 unauthorized."""
    holder = await registered(server)
    cert, _ = await issued(server, holder)
    other = await registered(server)
    payload = {"certificate": b64(der(cert))}
    assert_problem(await other.post(REVOKE, payload), 403, "unauthorized")
    created = await other.new_order(NAMES[0])
    await authorize(server, other, created.json())
    assert_problem(await other.post(REVOKE, payload), 403, "unauthorized")
    await assert_not_revoked(server, cert)


def foreign_certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web.bluerobin.local")])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))


async def test_revoke_certificate_not_issued_here(server: AcmeServer) -> None:
    """RFC 8555 7.6: a certificate this CA did not issue cannot be revoked here; this
    server answers 404 malformed (revocation.RevocationService.revoke)."""
    client = await registered(server)
    response = await client.post(REVOKE, {"certificate": b64(der(foreign_certificate()))})
    assert_problem(response, 404, "malformed")


async def test_revoke_same_serial_different_certificate_is_404(server: AcmeServer) -> None:
    """RFC 8555 7.6: only the exact certificate issued here matches, not a look-alike
    carrying one of our serial numbers."""
    client = await registered(server)
    cert, _ = await issued(server, client)
    fake = foreign_certificate()
    key = ec.generate_private_key(ec.SECP256R1())
    forged = (x509.CertificateBuilder().subject_name(fake.subject).issuer_name(cert.issuer)
              .public_key(key.public_key()).serial_number(cert.serial_number)
              .not_valid_before(fake.not_valid_before_utc)
              .not_valid_after(fake.not_valid_after_utc).sign(key, hashes.SHA256()))
    response = await server.client().post(REVOKE, {"certificate": b64(der(forged))},
                                          key=key, use_jwk=True)
    assert_problem(response, 404, "malformed")
    await assert_not_revoked(server, cert)


@pytest.mark.parametrize("certificate", ["not base64!", b64(b"not DER"), None])
async def test_revoke_unreadable_certificate_is_malformed(server: AcmeServer,
                                                          certificate: str | None) -> None:
    """RFC 8555 7.6: "certificate" is the base64url DER of a certificate."""
    client = await registered(server)
    payload = {} if certificate is None else {"certificate": certificate}
    assert_problem(await client.post(REVOKE, payload), 400, "malformed")
