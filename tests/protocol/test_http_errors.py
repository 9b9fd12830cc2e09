"""The HTTP and JWS layer of RFC 8555 section 6: headers every response carries, problem
documents, methods, media types, sizes, nonces, URLs, keys and algorithms."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest

from acme_ca.api.context import SERVICES
from acme_ca.cli.wiring import BACKGROUND
from tests.acme_client import BASE, Response, b64, jwk_of
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    INDEX_LINK,
    NEW_ACCOUNT,
    NEW_ORDER,
    assert_problem,
    issue,
    media_type,
    registered,
)

POST_ONLY = ("/acme/new-account", "/acme/new-order", "/acme/revoke-cert", "/acme/key-change",
             "/acme/acct/x", "/acme/acct/x/orders", "/acme/order/x", "/acme/order/x/finalize",
             "/acme/authz/x", "/acme/chall/x", "/acme/cert/ab")


async def test_every_acme_response_has_a_fresh_nonce_and_index_link(server: AcmeServer) -> None:
    """RFC 8555 6.5 and 7.1: Replay-Nonce and Link rel="index" on every response, success
    or error (404 unknown path, 405 wrong method); each nonce is new and usable."""
    client = server.client()
    responses = [
        await server.http.get("/directory"),
        await server.http.head("/acme/new-nonce"),
        await server.http.get("/acme/new-nonce"),
        await server.http.get("/acme/no-such-thing"),
        await server.http.post("/acme/no-such-thing", data=b"{}"),
        await server.http.get("/acme/new-order"),
    ]
    assert [r.status for r in responses] == [200, 200, 204, 404, 404, 405]
    posted = [await client.new_account(), await client.post(f"{BASE}/acme/order/nope")]
    assert [r.status for r in posted] == [201, 404]
    nonces = []
    for response in responses + posted:
        assert INDEX_LINK in response.headers.getall("Link", []), response.headers
        nonces.append(response.headers["Replay-Nonce"])
    assert len(set(nonces)) == len(nonces)
    client.nonce = responses[3].headers["Replay-Nonce"]  # the 404's nonce works
    assert (await client.post(client.kid)).status == 200


async def test_the_holder_of_the_background_lease_purges_expired_nonces(
    server: AcmeServer,
) -> None:
    """RFC 8555 6.5: nonces expire. Every response mints one, unauthenticated ones too;
    the expired ones are deleted by the cluster's background work (the holder of its
    lease, every period), the fresh ones kept."""
    for _ in range(40):  # more than one batch of nonces minted (NonceService.batch)
        assert (await server.http.head("/acme/new-nonce")).status == 200
    server.clock.advance(timedelta(hours=1))  # they all expired
    fresh = (await server.http.head("/acme/new-nonce")).headers["Replay-Nonce"]
    assert await server.app[BACKGROUND].step()
    assert await server.store.purge_expired_nonces(server.clock.now(), limit=1) == 0
    client = server.client()
    client.nonce = fresh
    assert (await client.new_account()).status == 201


async def test_unknown_path_is_a_404_problem(server: AcmeServer) -> None:
    """RFC 8555 6.7: errors are problem documents, also for an unknown resource."""
    response = await server.http.get("/acme/no-such-thing")
    assert response.status == 404
    assert media_type(response) == "application/problem+json"
    doc = await response.json(content_type=None)
    assert doc["type"] == "urn:ietf:params:acme:error:malformed"
    assert doc["status"] == 404 and doc["detail"]


@pytest.mark.parametrize("path", POST_ONLY)
async def test_get_on_post_only_resource_is_405(server: AcmeServer, path: str) -> None:
    """RFC 8555 6.3: resources are read with POST-as-GET; a plain GET is 405 malformed
    with Allow: POST (RFC 9110 15.5.6)."""
    response = await server.http.get(path)
    assert response.status == 405
    assert media_type(response) == "application/problem+json"
    doc = await response.json(content_type=None)
    assert doc["type"] == "urn:ietf:params:acme:error:malformed" and doc["status"] == 405
    assert response.headers["Allow"] == "POST"
    assert response.headers["Replay-Nonce"]


@pytest.mark.parametrize(("path", "status"), [
    ("/directory", 200), ("/acme/new-nonce", 204), ("/roots/root.pem", 200),
    ("/roots/chain.pem", 200)])
async def test_get_is_allowed_on_public_resources(server: AcmeServer, path: str,
                                                  status: int) -> None:
    """RFC 8555 7.1.1 and 7.2: the directory and newNonce answer GET (so do the roots)."""
    response = await server.http.get(path)
    assert response.status == status


async def test_wrong_content_type_is_415(server: AcmeServer) -> None:
    """RFC 8555 6.2: a POST not of type application/jose+json gets 415."""
    response = await server.http.post("/acme/new-account", data=b"{}",
                                      headers={"Content-Type": "application/json"})
    assert response.status == 415
    assert media_type(response) == "application/problem+json"
    doc = await response.json(content_type=None)
    assert doc["type"] == "urn:ietf:params:acme:error:malformed" and doc["status"] == 415
    assert response.headers["Replay-Nonce"]


async def test_oversized_body_is_a_413_problem(server: AcmeServer) -> None:
    """RFC 8555 6.7: a body over 64 KiB is refused with 413 as a problem document, not
    an HTML error page."""
    body = json.dumps({"protected": "", "payload": "A" * (70 * 1024), "signature": ""})
    response = await server.http.post("/acme/new-account", data=body.encode(),
                                      headers={"Content-Type": "application/jose+json"})
    assert response.status == 413
    assert media_type(response) == "application/problem+json"
    doc = await response.json(content_type=None)
    assert doc["type"] == "urn:ietf:params:acme:error:malformed" and doc["status"] == 413
    assert response.headers["Replay-Nonce"]


async def test_reused_nonce_is_bad_nonce_with_a_fresh_one(server: AcmeServer) -> None:
    """RFC 8555 6.5: a consumed nonce is badNonce (400) with Boulder's wording (acme.sh
    matches it) and a fresh nonce that then works."""
    client = server.client()
    nonce = await client.fresh_nonce()
    client.nonce = nonce
    assert (await client.new_account()).status == 201
    client.nonce = nonce
    replay = await client.post(client.kid)
    doc = assert_problem(replay, 400, "badNonce")
    assert doc["detail"].startswith("JWS has an invalid anti-replay nonce")
    assert replay.headers["Replay-Nonce"] != nonce
    assert (await client.post(client.kid)).status == 200  # uses the fresh nonce


async def test_url_mismatch_is_unauthorized(server: AcmeServer) -> None:
    """RFC 8555 6.4: a "url" other than the request URL is rejected as unauthorized."""
    client = await registered(server)
    response = await client.post(NEW_ORDER, {"identifiers": [
        {"type": "dns", "value": "web.bluerobin.local"}]}, protected={"url": client.kid})
    assert_problem(response, 403, "unauthorized")


@pytest.mark.parametrize("kid", [f"{BASE}/acme/acct/no-such-account",
                                 "https://elsewhere.test/acme/acct/1"])
async def test_unknown_kid_is_account_does_not_exist(server: AcmeServer, kid: str) -> None:
    """RFC 8555 6.2 and 7.3.1: a kid naming no account of this server is accountDoesNotExist."""
    client = server.client(kid=kid)
    response = await client.new_order("web.bluerobin.local")
    assert_problem(response, 400, "accountDoesNotExist")


async def test_unsigned_kid_with_a_lone_surrogate_is_malformed(server: AcmeServer) -> None:
    """RFC 8259 8.1 and RFC 7515 5.2: JSON text is UTF-8, and a lone surrogate ("\\ud800"
    escaped in the header) is no Unicode text; such a kid, in a request nobody signed, was
    a UnicodeEncodeError in Links.account_id_from_kid, a 500 anyone could cause. It is
    malformed, refused before any account lookup; the nonce stays unspent (6.5)."""
    client = await registered(server)
    nonce = await client.fresh_nonce()
    protected = {"alg": "ES256", "kid": f"{BASE}/acme/acct/\ud800", "nonce": nonce,
                 "url": NEW_ORDER}
    jws = {"protected": b64(json.dumps(protected).encode()), "payload": "",
           "signature": b64(b"x" * 64)}
    response = await server.http.post("/acme/new-order", data=json.dumps(jws),
                                      headers={"Content-Type": "application/jose+json"})
    raw = Response(response.status, response.headers, await response.read())
    doc = assert_problem(raw, 400, "malformed")
    assert "surrogate" in doc["detail"], doc
    client.nonce = nonce
    assert (await client.post(client.kid)).status == 200  # the nonce was not spent


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_unsupported_algorithm_lists_the_supported_ones(server: AcmeServer,
                                                              alg: str) -> None:
    """RFC 8555 6.2: "none" and MAC algorithms are refused with badSignatureAlgorithm and
    an "algorithms" list of what is supported."""
    client = server.client()
    response = await client.post(NEW_ACCOUNT, {"termsOfServiceAgreed": True}, use_jwk=True,
                                 protected={"alg": alg})
    doc = assert_problem(response, 400, "badSignatureAlgorithm")
    assert "ES256" in doc["algorithms"] and alg not in doc["algorithms"]


async def test_jwk_and_kid_together_is_malformed(server: AcmeServer) -> None:
    """RFC 8555 6.2: the "jwk" and "kid" fields are mutually exclusive."""
    client = await registered(server)
    response = await client.post(client.kid, None, protected={"jwk": jwk_of(client.key)})
    assert_problem(response, 400, "malformed")


async def test_kid_on_new_account_is_malformed(server: AcmeServer) -> None:
    """RFC 8555 6.2 and 7.3: newAccount is signed with "jwk", never "kid"."""
    client = await registered(server)
    response = await client.post(NEW_ACCOUNT, {"termsOfServiceAgreed": True})
    assert_problem(response, 400, "malformed")


async def test_jwk_where_kid_is_required_is_malformed(server: AcmeServer) -> None:
    """RFC 8555 6.2: requests other than newAccount and revokeCert carry "kid"."""
    client = await registered(server)
    response = await client.post(NEW_ORDER, {"identifiers": [
        {"type": "dns", "value": "web.bluerobin.local"}]}, use_jwk=True)
    assert_problem(response, 400, "malformed")


async def test_unexpected_exception_is_server_internal_with_request_id(
        server: AcmeServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """RFC 8555 6.7: a server failure is serverInternal (500); the detail names a request
    id to find in the log, and shows no traceback or exception text."""
    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals /etc/acme-ca")

    monkeypatch.setattr(server.app[SERVICES]().orders, "new_order", explode)
    client = await registered(server)
    with caplog.at_level(logging.ERROR):
        response = await client.new_order("web.bluerobin.local")
    doc = assert_problem(response, 500, "serverInternal")
    match = re.search(r"request id ([0-9a-f]+)", doc["detail"])
    assert match, doc["detail"]
    text = response.body.decode()
    assert "Traceback" not in text and "secret" not in text and "RuntimeError" not in text
    assert match.group(1) in caplog.text and "secret internals" in caplog.text
    assert response.headers["Cache-Control"] == "no-store"


async def test_post_responses_are_not_cached(server: AcmeServer) -> None:
    """RFC 8555 6.7 / RFC 9111: POST responses (resources, errors, certificates) carry
    Cache-Control: no-store."""
    client = await registered(server)
    order, _ = await issue(server, client, "web.bluerobin.local")
    responses = [
        await client.post(client.kid),
        await client.new_order("db.bluerobin.local"),
        await client.post(order["certificate"]),
        await client.new_order("example.com"),
        await client.post(NEW_ACCOUNT, {"termsOfServiceAgreed": True}, use_jwk=True),
    ]
    assert [r.status for r in responses] == [200, 201, 200, 400, 200]
    for response in responses:
        assert response.headers["Cache-Control"] == "no-store", response.headers
