"""The whole RFC 8555 issuance flow, in process: account, order, challenge, finalize,
download; and the status machine of section 7.1.6 along the way."""

from __future__ import annotations

import asyncio

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.acme_client import BASE, AcmeTestClient, b64, make_csr
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import authorize, issue


async def test_directory_lists_every_resource(server: AcmeServer) -> None:
    """RFC 8555 7.1.1: the directory object names every endpoint, with a meta object."""
    directory = await server.client().directory()
    for name in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange"):
        assert directory[name].startswith(BASE + "/")
    assert directory["meta"]["externalAccountRequired"] is False


async def test_new_nonce_head_and_get(server: AcmeServer) -> None:
    """RFC 8555 7.2: HEAD gives 200, GET 204, both with a nonce and Cache-Control: no-store."""
    head = await server.http.head("/acme/new-nonce")
    get = await server.http.get("/acme/new-nonce")
    assert (head.status, get.status) == (200, 204)
    for response in (head, get):
        assert response.headers["Replay-Nonce"]
        assert response.headers["Cache-Control"] == "no-store"
        assert 'rel="index"' in response.headers["Link"]
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]


async def test_new_nonce_head_says_it_has_no_body(server: AcmeServer) -> None:
    """RFC 9110 8.6: a HEAD response may carry Content-Length; saying 0 lets clients that
    otherwise close the connection after a length-less response keep it open (aiohttp's
    client reconnected, with a new TLS handshake, after every HEAD newNonce)."""
    head = await server.http.head("/acme/new-nonce")
    assert head.headers.get("Content-Length") == "0"


async def test_complete_issuance(server: AcmeServer) -> None:
    """RFC 8555 7.3-7.4.2: a certificate for two names, chained to the intermediate."""
    client = server.client()
    account = await client.new_account(contact=["mailto:admin@bluerobin.local"])
    assert account.status == 201
    order, pem = await issue(server, client, "web.bluerobin.local", "api.bluerobin.local")
    assert order["status"] == "valid"
    certs = x509.load_pem_x509_certificates(pem)
    assert len(certs) == 2 and certs[1] == server.issuer.certificate
    leaf = certs[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == [
        "api.bluerobin.local", "web.bluerobin.local"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    leaf.verify_directly_issued_by(server.issuer.certificate)


async def test_order_becomes_ready_with_its_last_authorization(server: AcmeServer) -> None:
    """RFC 8555 7.1.6: pending until every authorization is valid, then ready at once."""
    client = server.client()
    await client.new_account()
    created = await client.new_order("a.bluerobin.local", "b.bluerobin.local")
    order_url = created.headers["Location"]
    first, second = created.json()["authorizations"]
    for i, authz_url in enumerate((first, second)):
        authz = (await client.post(authz_url)).json()
        challenge = authz["challenges"][0]
        server.validator.served[challenge["token"]] = client.key_authorization(challenge["token"])
        await client.post(challenge["url"], {})
        await server.settle()
        assert (await client.post(authz_url)).json()["status"] == "valid"
        status = (await client.post(order_url)).json()["status"]
        assert status == ("pending" if i == 0 else "ready")


async def test_failed_challenge_invalidates_authorization_and_order(server: AcmeServer) -> None:
    """RFC 8555 7.1.6: a failed validation makes the authorization and the order invalid.
    The challenge's error is a problem document without a top-level "identifier" (6.7.1)."""
    client = server.client()
    await client.new_account()
    created = await client.new_order("web.bluerobin.local")
    authz_url = created.json()["authorizations"][0]
    challenge = (await client.post(authz_url)).json()["challenges"][0]
    server.validator.served[challenge["token"]] = "wrong"
    await client.post(challenge["url"], {})
    await server.settle()
    after = (await client.post(challenge["url"])).json()
    assert after["status"] == "invalid"
    assert after["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    assert "identifier" not in after["error"], after["error"]
    assert (await client.post(authz_url)).json()["status"] == "invalid"
    order = (await client.post(created.headers["Location"])).json()
    assert order["status"] == "invalid" and order["error"]


async def test_valid_authorization_is_reused(server: AcmeServer) -> None:
    """RFC 8555 7.4: the server may reuse a valid authorization of the same account."""
    client = server.client()
    await client.new_account()
    await issue(server, client, "web.bluerobin.local")
    calls = len(server.validator.calls)
    again = await client.new_order("web.bluerobin.local")
    assert again.json()["status"] == "ready"
    assert len(server.validator.calls) == calls


async def test_concurrent_finalize_issues_exactly_one_certificate(server: AcmeServer) -> None:
    """RFC 8555 7.4: of concurrent finalize requests on one order, one certificate results."""
    client = server.client()
    await client.new_account()
    created = await client.new_order("web.bluerobin.local")
    await authorize(server, client, created.json())
    csr, _ = make_csr(["web.bluerobin.local"])
    clients = [AcmeTestClient(server.http, key=client.key, kid=client.kid) for _ in range(6)]
    responses = await asyncio.gather(*(c.post(created.json()["finalize"], {"csr": b64(csr)})
                                       for c in clients))
    assert sorted(r.status for r in responses).count(200) >= 1
    issued = await server.store.list_certificates()
    assert len(issued) == 1
    for r in responses:
        assert r.status == 200 or r.problem_type == "orderNotReady"


async def test_identical_refinalize_returns_the_order(server: AcmeServer) -> None:
    """ACME-NOTES: an identical re-finalize of a valid order is answered with the order."""
    client = server.client()
    await client.new_account()
    created = await client.new_order("web.bluerobin.local")
    await authorize(server, client, created.json())
    csr, _ = make_csr(["web.bluerobin.local"])
    first = await client.post(created.json()["finalize"], {"csr": b64(csr)})
    second = await client.post(created.json()["finalize"], {"csr": b64(csr)})
    assert first.status == second.status == 200
    assert first.json()["certificate"] == second.json()["certificate"]
    other, _ = make_csr(["web.bluerobin.local"])
    third = await client.post(created.json()["finalize"], {"csr": b64(other)})
    assert third.status == 403 and third.problem_type == "orderNotReady"


async def test_revoke_by_account_then_already_revoked(server: AcmeServer) -> None:
    """RFC 8555 7.6: the account that holds the certificate revokes it; twice is an error."""
    client = server.client()
    await client.new_account()
    _, pem = await issue(server, client, "web.bluerobin.local")
    der = x509.load_pem_x509_certificates(pem)[0].public_bytes(Encoding.DER)
    revoke = f"{BASE}/acme/revoke-cert"
    payload = {"certificate": b64(der), "reason": 4}
    assert (await client.post(revoke, payload)).status == 200
    again = await client.post(revoke, payload)
    assert again.status == 400 and again.problem_type == "alreadyRevoked"
