"""certbot's `acme` library (ClientV2) against a live `acme-ca serve`, step by step.

Account (201, then the same key finds it again), an order for two names answered
over http-01 by acme.standalone on 127.0.0.1:<http01_port>, finalization, openssl
and TLS checks of the chain, revocation (twice: alreadyRevoked), deactivation of the
account (a new order is then unauthorized).
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import josepy as jose
import pytest
import requests
from acme import challenges, client, crypto_util, errors, messages, standalone
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from integration.clients import (
    NAMES,
    AcmeServer,
    san_names,
    split_chain,
    tls_handshake,
    verify_chain,
)

pytestmark = pytest.mark.integration

Resource = standalone.HTTP01RequestHandler.HTTP01Resource


class RecordingNetwork(client.ClientNetwork):
    """A ClientNetwork that remembers the status of every response, for the assertions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[str, str, int]] = []

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        response = super()._send_request(method, url, *args, **kwargs)
        self.seen.append((method, url, response.status_code))
        return response

    def last_status(self, url: str) -> int:
        return next(status for method, u, status in reversed(self.seen) if u == url)


def account_key(kind: str) -> tuple[jose.JWK, jose.JWASignature]:
    if kind == "rsa2048":  # what certbot makes for a new account
        return jose.JWKRSA(key=rsa.generate_private_key(65537, 2048)), jose.RS256
    return jose.JWKEC(key=ec.generate_private_key(ec.SECP384R1())), jose.ES384


def connect(acme_server: AcmeServer, key: jose.JWK, alg: jose.JWASignature) -> client.ClientV2:
    net = RecordingNetwork(
        key, alg=alg, verify_ssl=str(acme_server.root_cert), user_agent="acme-ca-integration"
    )
    directory = client.ClientV2.get_directory(acme_server.directory, net)
    return client.ClientV2(directory, net)


def net_of(acme: client.ClientV2) -> RecordingNetwork:
    assert isinstance(acme.net, RecordingNetwork)
    return acme.net


@contextlib.contextmanager
def http01_responder(port: int, resources: set[Any]) -> Iterator[None]:
    """acme.standalone's HTTP01Server on 127.0.0.1:port, in a thread, for the block."""
    server = standalone.HTTP01Server(("127.0.0.1", port), resources, ipv6=False, timeout=10)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def http01(authzr: messages.AuthorizationResource) -> messages.ChallengeBody:
    return next(c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01))


@pytest.mark.parametrize("kind", ["rsa2048", "ec-p384"])
def test_account_order_revoke_deactivate(
    acme_server: AcmeServer, tmp_path: Path, kind: str
) -> None:
    root = acme_server.root_cert
    key, alg = account_key(kind)
    acme = connect(acme_server, key, alg)
    new_account_url = acme.directory["newAccount"]

    # a new account: 201 + Location
    regr = acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    assert net_of(acme).last_status(new_account_url) == 201
    assert regr.uri and regr.uri.startswith(acme_server.server.base_url)
    assert regr.body.status == "valid"

    # the same key again: 200 + Location of the same account (certbot: ConflictError)
    again = connect(acme_server, key, alg)
    with pytest.raises(errors.ConflictError) as conflict:
        again.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    assert conflict.value.location == regr.uri
    found = again.query_registration(
        messages.RegistrationResource(uri=conflict.value.location, body=messages.Registration())
    )
    assert net_of(again).last_status(new_account_url) == 200  # onlyReturnExisting
    assert found.uri == regr.uri
    assert found.body.status == "valid"

    # an order for two names, answered over http-01
    cert_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = cert_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    csr_pem = crypto_util.make_csr(key_pem, list(NAMES))
    started = time.monotonic()
    orderr = acme.new_order(csr_pem)
    assert net_of(acme).last_status(acme.directory["newOrder"]) == 201
    assert {i.value for i in orderr.body.identifiers} == set(NAMES)
    assert len(orderr.authorizations) == len(NAMES)
    answers = []
    for authzr in orderr.authorizations:
        challb = http01(authzr)
        response, validation = challb.response_and_validation(key)
        answers.append((challb, response, Resource(challb.chall, response, validation)))
    with http01_responder(acme_server.http01_port, {r for _, _, r in answers}):
        for challb, response, _ in answers:
            acme.answer_challenge(challb, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
        finished = acme.poll_and_finalize(orderr, deadline)
    print(f"\nacme library: new order to certificate: {time.monotonic() - started:.2f} s")
    assert finished.body.status == messages.STATUS_VALID

    cert_path, chain_path = split_chain(finished.fullchain_pem.encode(), tmp_path)
    leaf = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert san_names(leaf) == set(NAMES)
    verify_chain(root, cert_path, chain_path)
    fullchain, key_file = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    fullchain.write_text(finished.fullchain_pem)
    key_file.write_bytes(key_pem)
    assert tls_handshake(fullchain, key_file, root).serial_number == leaf.serial_number

    # revoke with the account key; a second time: alreadyRevoked
    acme.revoke(leaf, 1)
    with pytest.raises(messages.Error) as revoked:
        acme.revoke(leaf, 1)
    assert revoked.value.code == "alreadyRevoked", revoked.value

    # deactivate the account: it may not order any more
    deactivated = acme.deactivate_registration(regr)
    assert deactivated.body.status == "deactivated"
    with pytest.raises(messages.Error) as refused:
        acme.new_order(csr_pem)
    assert refused.value.code == "unauthorized", refused.value
