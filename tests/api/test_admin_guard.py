"""The admin listener's guard, over real TLS on loopback (issue 13 item 2: "HTTPS with
client certificates required: only certificates of an admin profile from this CA").

The listener is built as ``serve`` builds it (``admin_tls_context``, ``ServerTls.share``,
``build_admin_app``); the clients are Python's ssl with a certificate from the same
store. A handshake without a certificate of this CA fails; a certificate of this CA
that is not an issued, unexpired admin certificate on record gets 403.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.api.admin import admin_identity
from acme_ca.authority import issuance
from acme_ca.authority.admins import AdminCertificate
from acme_ca.authority.revocation import OPERATOR_REASONS, RevocationService
from acme_ca.authority.server_tls import ServerTls
from acme_ca.cli.wiring import admin_tls_context, build_admin_app
from acme_ca.clock import FakeClock
from acme_ca.config_policy import ADMIN_PROFILE
from acme_ca.domain.models import serial_hex
from acme_ca.domain.origin import current_origin
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, generate_key
from acme_ca.pki.profiles import CLIENT_AUTH, LeafRequest, admin_request
from acme_ca.store import Store, open_store
from tests.conftest import Hierarchy, load_issuer

HOST = "admin.bluerobin.local"  # inside the hierarchy's name constraints


@dataclass
class Listener:
    port: int
    store: Store
    issuer: Issuer
    clock: FakeClock
    root: Path
    tmp: Path

    async def issue(self, name: str, *, profile: str = ADMIN_PROFILE,
                    validity: timedelta = timedelta(days=30)) -> AdminCertificate:
        """A certificate of this CA recorded under ``profile``: an admin certificate, or
        (any other profile) a clientAuth leaf for the DNS name ``name``."""
        key = generate_key(KeyType.EC_P256)
        now = self.clock.now()
        start, end = now - timedelta(minutes=1), now + validity
        request = (admin_request(key.public_key(), name, start, end)
                   if profile == ADMIN_PROFILE else
                   LeafRequest(key.public_key(), (name,), (), start, end, CLIENT_AUTH))
        cert = await issuance.issue(self.store, self.issuer, request, now, profile=profile)
        return AdminCertificate(key, cert, self.issuer.chain)

    def client(self, made: AdminCertificate | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.root))
        if made is not None:
            context.load_cert_chain(*write_pem(self.tmp, made.key, made.certificate,
                                               *made.chain))
        return context

    async def get(self, made: AdminCertificate | None, path: str = "/metrics"
                  ) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(
                f"https://127.0.0.1:{self.port}{path}", ssl=self.client(made),
                server_hostname=HOST) as response:
            return response.status, await response.text()


def write_pem(tmp: Path, key: ec.EllipticCurvePrivateKey | object,
              *certs: x509.Certificate) -> tuple[str, str]:
    """(certificate chain file, key file) for ``load_cert_chain``."""
    index = len(list(tmp.glob("client-*.key")))
    cert_file, key_file = tmp / f"client-{index}.crt", tmp / f"client-{index}.key"
    cert_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    key_file.write_bytes(key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@pytest.fixture
async def listener(hierarchy: Hierarchy, tmp_path: Path) -> AsyncIterator[Listener]:
    clock = FakeClock(hierarchy.now)
    issuer = load_issuer(hierarchy)
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock)
    tls = ServerTls(store=store, issuer=lambda: issuer, dns_names=(HOST,), ip_addresses=(),
                    directory=tmp_path / "tls", clock=clock)
    await tls.start()
    app = build_admin_app(store, lambda: issuer, clock, tmp_path)

    async def whoami(request: web.Request) -> web.Response:
        identity = admin_identity(request)
        return web.Response(text=f"{identity.name} {identity.serial} {current_origin().actor}")

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("a bug in an admin page")

    app.router.add_get("/whoami", whoami)
    app.router.add_get("/boom", boom)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.share(admin_tls_context(issuer)))
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Listener(port, store, issuer, clock, hierarchy.paths.root_cert, tmp_path)
    finally:
        await runner.cleanup()
        await store.close()


async def test_an_admin_certificate_gets_in_and_is_named(listener: Listener) -> None:
    """Issue 13 item 2: /metrics over mTLS; the guard names the operator in the request
    and in the origin the audit log reads (domain.audit admin_actor)."""
    alice = await listener.issue("alice")
    status, body = await listener.get(alice)
    assert status == 200, body
    assert "acme_ca_ca_certificate_expiry_timestamp_seconds" in body
    serial = serial_hex(alice.certificate.serial_number)
    status, body = await listener.get(alice, "/whoami")
    assert (status, body) == (200, f"alice {serial} admin:alice:{serial}")


async def test_no_client_certificate_is_refused_at_the_handshake(listener: Listener) -> None:
    """Client certificates are required (ssl.CERT_REQUIRED): no HTTP answer at all."""
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await listener.get(None)


async def test_a_certificate_of_another_ca_is_refused_at_the_handshake(
        listener: Listener, make_hierarchy: Callable[..., Hierarchy]) -> None:
    """Only this CA's root and intermediates are trusted, never the system's CAs."""
    other = make_hierarchy("other")
    foreign = Listener(listener.port, listener.store, load_issuer(other), listener.clock,
                       listener.root, listener.tmp)
    key = generate_key(KeyType.EC_P256)
    now = listener.clock.now()
    cert = foreign.issuer.issue(admin_request(key.public_key(), "mallory",
                                              now - timedelta(minutes=1), now + timedelta(1)))
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await listener.get(AdminCertificate(key, cert, foreign.issuer.chain))


async def test_a_client_certificate_of_another_profile_is_forbidden(listener: Listener) -> None:
    """A clientAuth leaf this CA issued (as it does over ACME, profile client) passes
    the handshake but is no admin certificate: 403 with a one-line reason."""
    worker = await listener.issue("worker.bluerobin.local", profile="client")
    status, body = await listener.get(worker)
    assert status == 403
    assert body == "403 Forbidden: the client certificate is not an admin certificate\n"


async def test_revoking_an_admin_certificate_locks_the_operator_out(
        listener: Listener) -> None:
    """Issue 13 item 2 (brief): `acme-ca certs revoke SERIAL` locks out at once: the
    guard asks the store on every request."""
    bob = await listener.issue("bob")
    assert (await listener.get(bob))[0] == 200
    await RevocationService(listener.store, listener.clock).revoke_by_operator(
        serial_hex(bob.certificate.serial_number), OPERATOR_REASONS["keyCompromise"])
    status, body = await listener.get(bob)
    assert status == 403
    assert "is revoked" in body


async def test_an_expired_admin_certificate_is_forbidden(listener: Listener) -> None:
    """The record's validity is checked against the CA's clock too (RFC 5280 6.1.3)."""
    carol = await listener.issue("carol", validity=timedelta(days=1))
    listener.clock.advance(timedelta(days=2))
    status, body = await listener.get(carol)
    assert status == 403
    assert "not valid now" in body


async def test_a_certificate_not_on_record_is_forbidden(listener: Listener) -> None:
    """Signed by this intermediate but never recorded (made outside the CA): 403."""
    key = generate_key(KeyType.EC_P256)
    now = listener.clock.now()
    cert = listener.issuer.issue(admin_request(key.public_key(), "eve",
                                               now - timedelta(minutes=1), now + timedelta(1)))
    status, body = await listener.get(AdminCertificate(key, cert, listener.issuer.chain))
    assert status == 403
    assert "not one this CA issued" in body


async def test_a_failing_admin_page_is_one_line_never_a_traceback(
        listener: Listener, caplog: pytest.LogCaptureFixture) -> None:
    """Brief rule: never a traceback to the client; the log has it, with the id."""
    alice = await listener.issue("alice")
    status, body = await listener.get(alice, "/boom")
    assert status == 500
    assert body.startswith("500 Internal Server Error (request ") and body.count("\n") == 1
    request_id = body.split("request ")[1].rstrip(")\n")
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
