"""Certificate profiles (draft-ietf-acme-profiles) with real clients against a live
`acme-ca serve`: certbot from PyPI with --preferred-profile client (a clientAuth-only
leaf, for a NATS worker or a PostgreSQL client) and --required-profile with a profile
the CA does not offer (refused: invalidProfile), and certbot's acme library asking
newOrder for the mtls profile. Debian's lego 4.9 predates --profile."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from acme import crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from integration.clients import NAMES, AcmeServer, describe, expect_ok, load_certs, verify_chain
from integration.test_acme_library import (
    Resource,
    account_key,
    connect,
    http01,
    http01_responder,
)
from integration.test_certbot import Certbot

pytestmark = pytest.mark.integration

SERVER = [ExtendedKeyUsageOID.SERVER_AUTH]
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]


def usages(leaf: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def certonly(certbot: Certbot, acme: AcmeServer, *extra: str) -> list[str]:
    return ["certonly", "--standalone", "--http-01-port", str(acme.http01_port),
            "--http-01-address", "127.0.0.1", "--server", acme.directory,
            "-d", NAMES[0], "--agree-tos", "--register-unsafely-without-email", *extra]


def test_certbot_preferred_and_required_profiles(acme_server: AcmeServer,
                                                 tmp_path: Path) -> None:
    """certbot reads meta.profiles (draft 3) and sends the profile in newOrder (4): a
    client certificate has clientAuth only; a required profile the CA does not offer
    fails, and no certificate is written."""
    certbot = Certbot(acme_server, tmp_path / "certbot")
    result, _ = certbot(*certonly(certbot, acme_server, "--preferred-profile", "client"))
    expect_ok(result, acme_server)
    leaf = load_certs(certbot.live / "cert.pem")[0]
    assert usages(leaf) == CLIENT
    verify_chain(acme_server.root_cert, certbot.live / "cert.pem", certbot.live / "chain.pem")

    other = Certbot(acme_server, tmp_path / "required")
    result, _ = other(*certonly(other, acme_server, "--required-profile", "shortlived"))
    assert result.returncode != 0, describe(result, acme_server)
    output = result.stdout + result.stderr  # certbot sent it: our invalidProfile's detail
    assert "profile 'shortlived' is unknown" in output, describe(result, acme_server)
    assert not other.live.exists()

    result, _ = other(*certonly(other, acme_server, "--required-profile", "server"))
    expect_ok(result, acme_server)
    assert usages(load_certs(other.live / "cert.pem")[0]) == SERVER


def test_acme_library_new_order_with_the_mtls_profile(acme_server: AcmeServer,
                                                      tmp_path: Path) -> None:
    """acme.client.ClientV2.new_order(csr_pem, profile=...): the order echoes the
    profile (draft 4) and the certificate carries serverAuth and clientAuth; an unknown
    profile is the error invalidProfile (6.3)."""
    key, alg = account_key("ec-p384")
    acme = connect(acme_server, key, alg)
    assert set(acme.directory.meta.profiles) == {"server", "client", "mtls"}
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    cert_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = cert_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    csr_pem = crypto_util.make_csr(key_pem, [NAMES[0]])
    with pytest.raises(messages.Error) as refused:
        acme.new_order(csr_pem, profile="nothing")
    # acme 5.9 has no code for it (messages.ERROR_CODES): the type says it
    assert refused.value.typ == "urn:ietf:params:acme:error:invalidProfile", refused.value

    orderr = acme.new_order(csr_pem, profile="mtls")
    assert orderr.body.profile == "mtls"
    (authzr,) = orderr.authorizations
    challb = http01(authzr)
    response, validation = challb.response_and_validation(key)
    with http01_responder(acme_server.http01_port,
                          {Resource(challb.chall, response, validation)}):
        acme.answer_challenge(challb, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
        finished = acme.poll_and_finalize(orderr, deadline)
    assert finished.body.status == messages.STATUS_VALID
    leaf = x509.load_pem_x509_certificates(finished.fullchain_pem.encode())[0]
    assert usages(leaf) == SERVER + CLIENT
