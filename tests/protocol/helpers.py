"""Shared helpers for the protocol tests: problem assertions, accounts, authorizations,
ready orders, finalize and issuance, key change."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from acme.client import _renewal_info_path_component
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.acme_client import BASE, AcmeTestClient, Response, alg_of, b64, jwk_of, make_csr, sign
from tests.protocol.conftest import AcmeServer

PROBLEM_JSON = "application/problem+json"
ERROR_PREFIX = "urn:ietf:params:acme:error:"
INDEX_LINK = f'<{BASE}/directory>;rel="index"'

NEW_ACCOUNT = f"{BASE}/acme/new-account"
NEW_ORDER = f"{BASE}/acme/new-order"
REVOKE = f"{BASE}/acme/revoke-cert"
KEY_CHANGE = f"{BASE}/acme/key-change"


def media_type(response: Any) -> str:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip()


def assert_problem(response: Response, status: int, kind: str, *, nonce: bool = True
                   ) -> dict[str, Any]:
    """RFC 8555 6.7 / RFC 7807: status, problem+json, the ACME error type, a detail;
    and, as on every ACME response, a nonce (6.5; ``nonce=False``: a GET that has none)
    and Link rel="index" (7.1)."""
    assert response.status == status, (response.status, response.body)
    assert media_type(response) == PROBLEM_JSON, response.headers.get("Content-Type")
    doc = response.json()
    assert doc["type"] == ERROR_PREFIX + kind, doc
    assert isinstance(doc.get("detail"), str) and doc["detail"], doc
    assert doc.get("status") == status, doc
    if nonce:
        assert response.headers.get("Replay-Nonce"), "an error response must carry a nonce"
    assert INDEX_LINK in response.headers.getall("Link", []), response.headers
    return doc


async def registered(server: AcmeServer, **payload: Any) -> AcmeTestClient:
    """A client with a fresh account."""
    client = server.client()
    created = await client.new_account(**payload)
    assert created.status == 201, created.body
    return client


Challenges = list[dict[str, Any]]


def http01(challenges: Challenges) -> dict[str, Any]:
    return next(c for c in challenges if c["type"] == "http-01")


async def authorize(server: AcmeServer, client: AcmeTestClient, order: dict,
                    pick: Callable[[Challenges], dict[str, Any]] | None = None) -> None:
    """Serve and answer one challenge of each pending authorization of an order (the one
    `pick` chooses among those offered; by default http-01), then wait."""
    for authz_url in order["authorizations"]:
        authz = (await client.post(authz_url)).json()
        if authz["status"] != "pending":
            continue
        challenge = (pick or http01)(authz["challenges"])
        server.validator.served[challenge["token"]] = client.key_authorization(challenge["token"])
        response = await client.post(challenge["url"], {})
        assert response.status == 200, response.body
    await server.settle()


async def ready_order(server: AcmeServer, client: AcmeTestClient, *names: str,
                      identifiers: list[dict[str, str]] | None = None,
                      created: Response | None = None) -> tuple[dict[str, Any], str]:
    """An order whose authorizations are all valid: (order as created, order URL).
    DNS `names`, or `identifiers` as newOrder takes them (e.g. type "ip"), or the order
    `created` already (e.g. with a profile)."""
    if created is None:
        created = await (client.post(NEW_ORDER, {"identifiers": identifiers}) if identifiers
                         else client.new_order(*names))
    assert created.status == 201, created.body
    await authorize(server, client, created.json())
    order_url = created.headers["Location"]
    order = (await client.post(order_url)).json()
    assert order["status"] == "ready", order
    return order, order_url


async def finalize(client: AcmeTestClient, order: dict[str, Any], *names: str,
                   csr_key: Any = None, csr: x509.CertificateSigningRequest | None = None
                   ) -> tuple[Response, Any]:
    """Finalize with a fresh CSR for `names`, or with `csr` when given:
    (response, the CSR key; None with `csr`)."""
    if csr is None:
        der, key = make_csr(list(names), key=csr_key)
    else:
        der, key = csr.public_bytes(Encoding.DER), None
    response = await client.post(order["finalize"], {"csr": b64(der)})
    return response, key


def cert_id(cert: x509.Certificate) -> str:
    """The ARI CertID (RFC 9773 4.1) as certbot 5.8's acme library builds it: an
    implementation apart from the server's."""
    return _renewal_info_path_component(cert)


def leaf_of(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem)[0]


async def issue(server: AcmeServer, client: AcmeTestClient, *names: str) -> tuple[dict, bytes]:
    """A certificate for `names` through the whole flow: (the valid order, its PEM chain)."""
    order, order_url = await ready_order(server, client, *names)
    finalized, _ = await finalize(client, order, *names)
    assert finalized.status == 200, finalized.body
    order = (await client.post(order_url)).json()
    cert = await client.post(order["certificate"])
    assert cert.status == 200
    return order, cert.body


def key_change_jws(client: AcmeTestClient, new_key: Any, *, url: str = KEY_CHANGE,
                   account: str | None = None, old_key: Any = None) -> dict[str, str]:
    """The inner JWS of RFC 8555 7.3.5, signed by the new key."""
    protected = {"alg": alg_of(new_key), "jwk": jwk_of(new_key), "url": url}
    payload = {"account": account or client.kid, "oldKey": jwk_of(old_key or client.key)}
    return sign(new_key, protected, json.dumps(payload).encode())
