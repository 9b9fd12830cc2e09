"""The ``admin`` profile is the admin listener's alone (issue 13 item 2): ACME can never
order under it, ``[profiles.admin]`` cannot be configured, and no ACME account may
revoke an admin certificate (RFC 8555 7.6's "holds authorizations for every name"
would hold vacuously for a certificate that names no identifier)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.authority import issuance
from acme_ca.config_policy import ADMIN_PROFILE
from acme_ca.domain.models import CertificateStatus, serial_hex
from acme_ca.pki.keys import KeyType, generate_key
from acme_ca.pki.profiles import admin_request
from tests.acme_client import b64
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import REVOKE, assert_problem, registered
from tests.test_config import assert_one_line_error


async def test_an_order_can_never_get_the_admin_profile(server: AcmeServer) -> None:
    """draft-ietf-acme-profiles 4: not advertised, so invalidProfile; no order made."""
    client = await registered(server)
    doc = assert_problem(await client.new_order("web.bluerobin.local", profile=ADMIN_PROFILE),
                         400, "invalidProfile")
    assert "'admin' is unknown" in doc["detail"], doc
    assert set((await client.directory())["meta"]["profiles"]) == {"server", "client", "mtls"}


def test_the_admin_profile_cannot_be_configured(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path, '[profiles.admin]\nextended_key_usages = ["clientAuth"]\n',
                          "profiles.admin: the name is reserved for admin certificates")


async def test_no_account_may_revoke_an_admin_certificate(server: AcmeServer) -> None:
    """An admin certificate names no identifier: an account holding authorizations for
    all of its (no) names holds nothing. Only its key or the operator revoke it."""
    key = generate_key(KeyType.EC_P256)
    now = server.clock.now()
    cert = await issuance.issue(server.store, server.issuer, admin_request(
        key.public_key(), "alice", now - timedelta(minutes=1), now + timedelta(days=1)),
        now, profile=ADMIN_PROFILE)
    stranger = await registered(server)
    payload = {"certificate": b64(cert.public_bytes(Encoding.DER))}
    assert_problem(await stranger.post(REVOKE, payload), 403, "unauthorized")
    record = await server.store.get_certificate(serial_hex(cert.serial_number))
    assert record.status is CertificateStatus.ISSUED
