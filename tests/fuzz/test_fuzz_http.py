"""Fuzz: through the whole aiohttp application, no request body yields a 500.

Two kinds of request, to every POST resource of one server that holds an account,
a ready order, a pending authorization and an issued certificate:

- bodies that are not valid requests: arbitrary bytes, arbitrary JSON, and valid
  requests with a few bytes mutated, under several content types;
- valid requests, correctly signed, whose payload is any JSON or a valid payload with
  members replaced, removed or added (so every payload schema is reached: newAccount,
  account update, keyChange and its inner JWS, newOrder, finalize with mutated CSRs,
  authorization deactivation, challenge, revokeCert with mutated certificates, and the
  POST-as-GET resources).

Every answer is below 500, and every error is an application/problem+json document.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import example, given
from hypothesis import strategies as st

from tests.acme_client import AcmeTestClient, Response, alg_of, b64, jwk_of, make_csr, sign
from tests.fuzz.strategies import JSON, dumps, fuzz, mutated_bytes, mutated_object
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    KEY_CHANGE,
    NEW_ACCOUNT,
    NEW_ORDER,
    REVOKE,
    finalize,
    leaf_of,
    ready_order,
    registered,
)

NAME = "web.bluerobin.local"
OTHER = "api.bluerobin.local"
ROUTES = ("newAccount", "account", "keyChange", "newOrder", "order", "finalize",
          "authorization", "challenge", "certificate", "orders", "revokeCert")


@dataclass
class World:
    """What the requests are about; `keeper` may be deactivated or re-keyed by them."""

    server: AcmeServer
    holder: AcmeTestClient  # owns everything below
    keeper: AcmeTestClient  # the account the account and keyChange requests change
    urls: dict[str, str]
    csr: bytes  # a valid CSR for the ready order
    certificate: bytes  # DER, issued to holder

    async def renew_keeper(self) -> None:
        self.keeper = await registered(self.server)
        self.urls["account"] = str(self.keeper.kid)
        self.urls["orders"] = f"{self.keeper.kid}/orders"


@pytest.fixture
async def world(server_factory: Callable[..., Any]) -> AsyncIterator[World]:
    server = await server_factory(**{"policy.allowed_ip_networks": ["10.0.0.0/8"]})
    holder = await registered(server)
    issued, _ = await ready_order(server, holder, OTHER)
    response, _ = await finalize(holder, issued, OTHER)
    certificate = leaf_of((await holder.post(response.json()["certificate"])).body)
    ready, order_url = await ready_order(server, holder, NAME)
    pending = (await holder.new_order("db.bluerobin.local")).json()
    authz_url = pending["authorizations"][0]
    challenge_url = (await holder.post(authz_url)).json()["challenges"][0]["url"]
    urls = {
        "newAccount": NEW_ACCOUNT, "keyChange": KEY_CHANGE, "newOrder": NEW_ORDER,
        "revokeCert": REVOKE, "order": order_url, "finalize": ready["finalize"],
        "authorization": authz_url, "challenge": challenge_url,
        "certificate": response.json()["certificate"],
    }
    csr, _ = make_csr([NAME])
    built = World(server, holder, holder, urls, csr, certificate.public_bytes(Encoding.DER))
    await built.renew_keeper()
    yield built
    await server.store.close()


def check(response: Response) -> None:
    assert response.status < 500, (response.status, response.body)
    if response.status >= 400:
        content_type = response.headers.get("Content-Type", "")
        assert content_type.startswith("application/problem+json"), response.headers
        json.loads(response.body)


def templates(world: World, route: str) -> Any:
    """A valid payload for each resource (None: POST-as-GET)."""
    return {
        "newAccount": {"termsOfServiceAgreed": True, "contact": ["mailto:a@bluerobin.local"],
                       "onlyReturnExisting": False},
        "account": {"contact": ["mailto:b@bluerobin.local"], "status": "deactivated"},
        "newOrder": {"identifiers": [{"type": "dns", "value": NAME},
                                     {"type": "ip", "value": "10.0.0.5"}],
                     "notBefore": "2030-01-01T00:00:00Z", "notAfter": "2030-01-02T00:00:00Z"},
        "finalize": {"csr": b64(world.csr)},
        "authorization": {"status": "deactivated"},
        "challenge": {},
        "revokeCert": {"certificate": b64(world.certificate), "reason": 4},
    }.get(route)


@fuzz(0.5)
@given(route=st.sampled_from(ROUTES), data=st.data(),
       content_type=st.sampled_from(["application/jose+json", "application/jose+json; x=é",
                                     "application/json", None]))
async def test_bodies_that_are_not_requests(world: World, route: str, data: st.DataObject,
                                            content_type: str | None) -> None:
    client = world.holder
    url = world.urls.get(route) or str(client.kid)
    valid = sign(client.key, {"alg": alg_of(client.key), "kid": client.kid,
                              "nonce": await client.fresh_nonce(), "url": url}, b"{}")
    body = data.draw(st.binary(max_size=300) | st.builds(dumps, JSON)
                     | mutated_bytes(dumps(valid)) | mutated_object(valid).map(dumps))
    headers = {"Content-Type": content_type} if content_type else {}
    response = await world.server.http.post(client.path(url), data=body, headers=headers)
    check(Response(response.status, response.headers, await response.read()))


@st.composite
def payloads(draw: st.DrawFn, world: World, route: str) -> Any:
    """A payload for `route`: any JSON, or its template with members mutated; the
    binary members (csr, certificate) sometimes keep their name but carry mutated DER."""
    template = templates(world, route)
    if route == "finalize" and draw(st.booleans()):
        return {"csr": b64(draw(mutated_bytes(world.csr)))}
    if route == "revokeCert" and draw(st.booleans()):
        return {"certificate": b64(draw(mutated_bytes(world.certificate))),
                "reason": draw(st.integers(-1, 11))}
    if template is None or draw(st.integers(0, 9)) == 0:
        return draw(st.none() | JSON)
    return draw(mutated_object(template))


async def key_change(world: World, data: st.DataObject) -> None:
    """keyChange by the keeper: an inner JWS by a new key, mutated as an object, in
    its header (signed again) or in its payload; on success the keeper holds the key."""
    keeper, new_key = world.keeper, ec.generate_private_key(ec.SECP256R1())
    protected: Any = {"alg": alg_of(new_key), "jwk": jwk_of(new_key), "url": KEY_CHANGE}
    inner_payload: Any = {"account": keeper.kid, "oldKey": jwk_of(keeper.key)}
    how = data.draw(st.integers(0, 3))
    if how == 1:
        protected = data.draw(mutated_object(protected))
    elif how == 2:
        inner_payload = data.draw(mutated_object(inner_payload))
    inner: Any = sign(new_key, protected if isinstance(protected, dict) else {},
                      dumps(inner_payload))
    if how == 3:
        inner = data.draw(mutated_object(inner))
    response = await keeper.post(KEY_CHANGE, inner)
    check(response)
    if response.status == 200:
        keeper.key = new_key


@fuzz(2)
@given(route=st.sampled_from(ROUTES), data=st.data())
@example(route="revokeCert", data=None).via("a certificate that is not v3: InvalidVersion")
async def test_signed_requests_with_hostile_payloads(world: World, route: str,
                                                      data: st.DataObject | None) -> None:
    if data is None:
        version_1 = world.certificate.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x05", 1)
        check(await world.holder.post(REVOKE, {"certificate": b64(version_1)}))
        return
    if route == "keyChange":
        await key_change(world, data)
        return
    payload = data.draw(payloads(world, route))
    body = None if payload is None else dumps(payload)
    if route == "newAccount":
        client = world.server.client()
        response = await client.post(NEW_ACCOUNT, body, use_jwk=True)
    elif route in ("account", "orders"):
        response = await world.keeper.post(world.urls[route], body)
    else:
        response = await world.holder.post(world.urls[route], body)
    check(response)
    if response.status == 401:  # the keeper deactivated itself: take a new one
        await world.renew_keeper()


async def test_refinalize_with_a_csr_of_an_unknown_key_type(world: World) -> None:
    """Found by the fuzz above: finalize again on a valid order, with a CSR whose key
    algorithm cryptography does not know (id-ecPublicKey's OID, 1.2.840.10045.2.1, made
    1.2.840.10173.2.1),
    raised UnsupportedAlgorithm, a 500; it is orderNotReady (RFC 8555 7.4) like any
    finalize of an order that is not ready, other than the same CSR again."""
    holder = world.holder
    assert (await holder.post(world.urls["finalize"], {"csr": b64(world.csr)})).status == 200
    unknown = world.csr.replace(b"\x2a\x86\x48\xce\x3d\x02\x01", b"\x2a\x86\x48\xcf\x3d\x02\x01")
    assert unknown != world.csr
    response = await holder.post(world.urls["finalize"], {"csr": b64(unknown)})
    check(response)
    assert (response.status, response.problem_type) == (403, "orderNotReady")
    again = await holder.post(world.urls["finalize"], {"csr": b64(world.csr)})
    assert again.status == 200 and again.json()["status"] == "valid"
