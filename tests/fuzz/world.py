"""The ACME world the HTTP fuzz tests act on, with fresh targets for every example.

One in-process server per test (tests/protocol/conftest.py, with terms of service), and
in it: `holder`, the account that owns the orders, authorizations and certificates;
`second`, another account holding valid authorizations for the certificates' name (so
it may revoke them, RFC 8555 7.6); a deactivated account (7.3.6); and targets already
used up: a finalized order, a deactivated authorization, an invalid challenge, a
revoked certificate. A target an example may use up (an account, a ready order, a
pending authorization or challenge, a certificate) is made afresh for that example by
`World.target`, so that no example finds it spent by the one before.

Strategies are built before any server exists, so that hypothesis can shrink them and
an @example can name them: what only the running world knows (account URLs, the request
URL, nonces, keys, DER) appears in them as tokens such as KID ("⟨kid⟩"), which `fill`
replaces for each example; `Der(CERTIFICATE, edits)` is the DER with bytes edited.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.acme_client import (
    BASE,
    AcmeTestClient,
    Response,
    alg_of,
    b64,
    jwk_of,
    make_csr,
    sign,
)
from tests.fuzz.strategies import Edit, apply_edits, dumps
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    INDEX_LINK,
    KEY_CHANGE,
    NEW_ACCOUNT,
    NEW_ORDER,
    PROBLEM_JSON,
    REVOKE,
    finalize,
    leaf_of,
    media_type,
    ready_order,
    registered,
)

NAME = "web.bluerobin.local"  # the ready orders'
OTHER = "api.bluerobin.local"  # the certificates'
TERMS = "https://ca.test/terms"
ACCOUNT_PREFIX = f"{BASE}/acme/acct/"

# Tokens: filled in by `fill` for each example.
KID, URL, NONCE, JWK = "⟨kid⟩", "⟨url⟩", "⟨nonce⟩", "⟨jwk⟩"  # of the request's signer
JWK_X, JWK_Y = "⟨jwk.x⟩", "⟨jwk.y⟩"
USED_NONCE = "⟨used-nonce⟩"  # a nonce the server has consumed
OTHER_KID, OTHER_JWK = "⟨other-kid⟩", "⟨other-jwk⟩"  # another live account
DEACTIVATED_KID = "⟨deactivated-kid⟩"
CSR, CERTIFICATE = "⟨csr⟩", "⟨certificate⟩"  # DER, sent as base64url
INNER = "⟨inner-jws⟩"  # a valid keyChange inner JWS, by a fresh key
DELETE = "⟨delete⟩"  # as a header member's value: leave the member out

ROUTES = ("newAccount", "account", "keyChange", "newOrder", "order", "finalize",
          "authorization", "challenge", "certificate", "orders", "revokeCert")

TEMPLATES: Mapping[str, Any] = {  # a valid payload for each resource (None: POST-as-GET)
    "newAccount": {"termsOfServiceAgreed": True, "contact": ["mailto:a@bluerobin.local"],
                   "onlyReturnExisting": False},
    "account": {"contact": ["mailto:b@bluerobin.local"], "status": "deactivated"},
    "keyChange": INNER,
    "newOrder": {"identifiers": [{"type": "dns", "value": NAME},
                                 {"type": "ip", "value": "10.0.0.5"}],
                 "notBefore": "2030-01-01T00:00:00Z", "notAfter": "2030-01-02T00:00:00Z"},
    "finalize": {"csr": CSR},
    "authorization": {"status": "deactivated"},
    "challenge": {},
    "revokeCert": {"certificate": CERTIFICATE, "reason": 4},
}


@dataclass(frozen=True)
class Der:
    """In a payload: the DER that `token` stands for, with `edits` applied."""

    token: str
    edits: tuple[Edit, ...] = ()


def fill(value: Any, tokens: Mapping[str, Any]) -> Any:
    """``value`` with every token replaced: a string that is a token becomes its value
    (bytes as base64url), a token inside a longer string its text; Der its edited DER."""
    if isinstance(value, Der):
        return b64(apply_edits(tokens[value.token], value.edits))
    if isinstance(value, str):
        if value in tokens:
            found = tokens[value]
            return b64(found) if isinstance(found, bytes) else found
        for token, text in tokens.items():
            if isinstance(text, str) and token in value:
                value = value.replace(token, text)
        return value
    if isinstance(value, list):
        return [fill(item, tokens) for item in value]
    if isinstance(value, dict):
        return {name: fill(item, tokens) for name, item in value.items()}
    return value


def check(response: Response) -> None:
    """No 500; every error an application/problem+json document with its status, and, as
    every ACME response, a Replay-Nonce (RFC 8555 6.5) and Link rel="index" (7.1)."""
    assert response.status < 500, (response.status, response.body)
    if response.status >= 400:
        assert media_type(response) == PROBLEM_JSON, response.headers
        assert json.loads(response.body)["status"] == response.status, response.body
        assert response.headers.get("Replay-Nonce"), response.headers
        assert INDEX_LINK in response.headers.getall("Link", []), response.headers


@dataclass(frozen=True)
class Issued:
    der: bytes
    key: ec.EllipticCurvePrivateKey | None  # None: not ours to know


@dataclass
class Target:
    """What one request is about: its URL, who signs it (kid None: the key goes in "jwk"),
    and the tokens its payload and header may hold."""

    url: str
    key: Any
    kid: str | None
    tokens: dict[str, Any] = field(default_factory=dict)

    def header(self, nonce: str) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": alg_of(self.key), "nonce": nonce, "url": self.url}
        if self.kid is None:
            header["jwk"] = jwk_of(self.key)
        else:
            header["kid"] = self.kid
        return header


@dataclass
class World:
    server: AcmeServer
    holder: AcmeTestClient
    second: AcmeTestClient
    deactivated: AcmeTestClient
    revoked: Issued  # a certificate of holder's, revoked
    certificate_url: str  # of that certificate, for POST-as-GET
    used_nonce: str
    csr: bytes  # for NAME, whose authorizations holder holds
    used: dict[str, str] = field(default_factory=dict)  # route -> a used-up target's URL
    names: itertools.count = field(default_factory=itertools.count)

    @classmethod
    async def create(cls, server: AcmeServer) -> World:
        holder, second, deactivated = [await registered(server) for _ in range(3)]
        await ready_order(server, second, OTHER)  # second holds OTHER's authorization
        gone = await deactivated.post(str(deactivated.kid), {"status": "deactivated"})
        assert gone.status == 200, gone.body
        order, order_url = await ready_order(server, holder, OTHER)
        response, key = await finalize(holder, order, OTHER)
        certificate_url = response.json()["certificate"]
        chain = await holder.post(certificate_url)
        revoked = Issued(leaf_of(chain.body).public_bytes(Encoding.DER), key)
        used_nonce = holder.nonce = await holder.fresh_nonce()
        response = await holder.post(REVOKE, {"certificate": b64(revoked.der)})
        assert response.status == 200, response.body
        world = cls(server, holder, second, deactivated, revoked, certificate_url, used_nonce,
                    make_csr([NAME])[0], {"order": order_url, "finalize": order["finalize"]})
        world.used["authorization"], _ = await world.pending()
        gone = await holder.post(world.used["authorization"], {"status": "deactivated"})
        assert gone.status == 200, gone.body
        _, world.used["challenge"] = await world.pending()  # nothing served: invalid
        assert (await holder.post(world.used["challenge"], {})).status == 200
        await server.settle()
        return world

    async def keeper(self) -> AcmeTestClient:
        """A fresh account, for requests that may deactivate it or change its key."""
        return await registered(self.server)

    async def certificate(self) -> Issued:
        """A fresh certificate for OTHER, owned by holder."""
        order, _ = await ready_order(self.server, self.holder, OTHER)
        response, key = await finalize(self.holder, order, OTHER)
        assert response.status == 200, response.body
        chain = await self.holder.post(response.json()["certificate"])
        return Issued(leaf_of(chain.body).public_bytes(Encoding.DER), key)

    async def pending(self) -> tuple[str, str]:
        """A fresh pending authorization, for a name never asked for: (authz, challenge)."""
        created = await self.holder.new_order(f"p{next(self.names)}.bluerobin.local")
        authz_url = created.json()["authorizations"][0]
        challenge = (await self.holder.post(authz_url)).json()["challenges"][0]
        return authz_url, challenge["url"]

    def tokens(self, key: Any, kid: str | None, url: str) -> dict[str, Any]:
        jwk = jwk_of(key)
        return {KID: kid or "", URL: url, JWK: jwk, JWK_X: jwk.get("x", ""),
                JWK_Y: jwk.get("y", ""), USED_NONCE: self.used_nonce,
                OTHER_KID: str(self.second.kid), OTHER_JWK: jwk_of(self.second.key),
                DEACTIVATED_KID: str(self.deactivated.kid), CSR: self.csr}

    async def target(self, route: str, *, used: bool = False) -> Target:
        """The request `route` is about, signed as a client would; with ``used`` a target
        that an earlier request has used up (finalized, deactivated, revoked)."""
        url, key, kid = "", self.holder.key, self.holder.kid
        extra: dict[str, Any] = {}
        if route == "newAccount":
            url, key, kid = NEW_ACCOUNT, ec.generate_private_key(ec.SECP256R1()), None
        elif route in ("account", "orders", "keyChange"):
            client = self.deactivated if used else await self.keeper()
            key, kid = client.key, client.kid
            url = {"account": str(kid), "orders": f"{kid}/orders", "keyChange": KEY_CHANGE}[route]
            extra[INNER] = inner_jws(ec.generate_private_key(ec.SECP256R1()), client)
        elif route == "newOrder":
            url = NEW_ORDER
        elif route in ("order", "finalize"):
            if used:
                url = self.used[route]
            else:
                order, order_url = await ready_order(self.server, self.holder, NAME)
                url = order_url if route == "order" else order["finalize"]
        elif route in ("authorization", "challenge"):
            url = self.used[route] if used else (await self.pending())[route == "challenge"]
        elif route == "certificate":
            url = self.certificate_url
        elif route == "revokeCert":
            url = REVOKE
            extra[CERTIFICATE] = (self.revoked if used else await self.certificate()).der
        return Target(url, key, kid, {**self.tokens(key, kid, url), **extra})

    async def send(self, target: Target, header: Mapping[str, Any], payload: Any) -> Response:
        """POST to the target's URL a JWS of ``header`` (tokens filled, DELETE members
        left out) and ``payload`` (filled; None is POST-as-GET), signed by its key."""
        header = {name: value for name, value in fill(dict(header), target.tokens).items()
                  if value != DELETE}
        body = None if payload is None else dumps(fill(payload, target.tokens))
        jws = sign(target.key, header, body)
        response = await self.server.http.post(
            target.url[len(BASE):], data=json.dumps(jws),
            headers={"Content-Type": "application/jose+json"})
        return Response(response.status, response.headers, await response.read())

    async def nonce(self) -> str:
        return await self.holder.fresh_nonce()


def inner_jws(new_key: Any, client: AcmeTestClient) -> dict[str, str]:
    """The inner JWS of keyChange (RFC 8555 7.3.5): client's account moves to new_key."""
    header = {"alg": alg_of(new_key), "jwk": jwk_of(new_key), "url": KEY_CHANGE}
    return sign(new_key, header, dumps({"account": client.kid, "oldKey": jwk_of(client.key)}))
