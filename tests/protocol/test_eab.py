"""External Account Binding (RFC 8555 7.3.4): a newAccount carries a JWS, MACed with the
HMAC key the CA gave its operator, over the account key; the CA binds that key to the
new account. Which problem type each refusal gets, and why: acme_ca/authority/eab.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.authority.eab import hmac_key_text, new_key
from acme_ca.domain.models import EabKey
from acme_ca.encoding import b64url_decode
from tests.acme_client import AcmeTestClient, b64, jwk_of
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import NEW_ACCOUNT, assert_problem

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def binding(client: AcmeTestClient, kid: str, hmac_key: bytes, *, alg: str = "HS256",
            payload_key: Any = None, **header: Any) -> dict[str, str]:
    """The externalAccountBinding a client builds (RFC 8555 7.3.4); ``header`` adds to
    or replaces members of its protected header."""
    fields = {"alg": alg, "kid": kid, "url": NEW_ACCOUNT, **header}
    protected = b64(json.dumps(fields).encode())
    payload = b64(json.dumps(jwk_of(payload_key or client.key)).encode())
    digest = _HASHES.get(alg, hashlib.sha256)
    mac = hmac.new(hmac_key, f"{protected}.{payload}".encode(), digest).digest()
    return {"protected": protected, "payload": payload, "signature": b64(mac)}


async def make_key(server: AcmeServer, **changes: Any) -> EabKey:
    key = new_key("team blue", server.clock.now(), **changes)
    return await server.store.create_eab_key(key)


@pytest.fixture
async def required(server_factory: Any) -> Any:
    acme = await server_factory(**{"acme.eab_required": True})
    yield acme
    await acme.store.close()


async def test_directory_says_a_binding_is_required(required: AcmeServer) -> None:
    """7.1.1: meta.externalAccountRequired, with [acme] eab_required = true."""
    assert (await required.client().directory())["meta"]["externalAccountRequired"] is True


async def test_directory_says_no_binding_is_required(server: AcmeServer) -> None:
    assert (await server.client().directory())["meta"]["externalAccountRequired"] is False


async def test_required_binding_missing_is_external_account_required(
        required: AcmeServer) -> None:
    """7.3.4: "If [the server] requires [a binding] and the request does not include one,
    then the server MUST reject it with externalAccountRequired"."""
    response = await required.client().new_account()
    assert_problem(response, 403, "externalAccountRequired")
    assert await required.store.list_eab_keys() == []


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_valid_binding_binds_the_key(required: AcmeServer, alg: str) -> None:
    """7.3.4: a MAC-based alg, the CA's kid, the newAccount url, the account key as
    payload: the account is created and bound; the key now names it."""
    key = await make_key(required)
    client = required.client()
    response = await client.new_account(
        externalAccountBinding=binding(client, key.kid, key.hmac_key, alg=alg))
    assert response.status == 201, response.body
    account_id = response.headers["Location"].rsplit("/", 1)[-1]
    assert (await required.store.get_account(account_id)).eab_kid == key.kid
    assert (await required.store.get_eab_key(key.kid)).account_id == account_id


async def test_the_hmac_key_as_clients_take_it(required: AcmeServer) -> None:
    """The key shown once is base64url without padding (what certbot and lego decode)."""
    key = await make_key(required)
    text = hmac_key_text(key)
    assert "=" not in text and b64url_decode(text) == key.hmac_key and len(key.hmac_key) == 32


async def test_binding_when_not_required_is_still_verified(server: AcmeServer) -> None:
    """7.3.4: a server that does not require a binding still verifies one it is given
    (a wrong MAC is refused), and binds a good one."""
    key = await make_key(server)
    client = server.client()
    wrong = await client.new_account(
        externalAccountBinding=binding(client, key.kid, b"not the key"))
    assert_problem(wrong, 403, "unauthorized")
    right = await client.new_account(
        externalAccountBinding=binding(client, key.kid, key.hmac_key))
    assert right.status == 201
    bound = (await server.store.get_eab_key(key.kid)).account_id
    assert bound is not None and right.headers["Location"].endswith("/" + bound)


async def refused(server: AcmeServer, key: EabKey, **kwargs: Any) -> dict[str, Any]:
    client = server.client()
    response = await client.new_account(
        externalAccountBinding=binding(client, key.kid, key.hmac_key, **kwargs))
    return assert_problem(response, 403, "unauthorized")


async def test_wrong_hmac_is_unauthorized(required: AcmeServer) -> None:
    """7.3.4 step 4: the MAC must verify with the key the kid names."""
    key = await make_key(required)
    client = required.client()
    response = await client.new_account(
        externalAccountBinding=binding(client, key.kid, bytes(32)))
    doc = assert_problem(response, 403, "unauthorized")
    assert "MAC does not verify" in doc["detail"]
    assert (await required.store.get_eab_key(key.kid)).account_id is None


async def test_unknown_kid_is_unauthorized(required: AcmeServer) -> None:
    """7.3.4 step 3: the kid must name a key the CA gave out."""
    client = required.client()
    response = await client.new_account(
        externalAccountBinding=binding(client, "no-such-kid", bytes(32)))
    doc = assert_problem(response, 403, "unauthorized")
    assert "not an external account key" in doc["detail"]


async def test_reused_key_is_unauthorized(required: AcmeServer) -> None:
    """A key binds one account: a second account key with the same EAB key is refused;
    the first account's key coming back finds its account (7.3.1)."""
    key = await make_key(required)
    first = required.client()
    created = await first.new_account(
        externalAccountBinding=binding(first, key.kid, key.hmac_key))
    assert created.status == 201
    doc = await refused(required, key)
    assert "already bound" in doc["detail"]
    again = await first.new_account(
        externalAccountBinding=binding(first, key.kid, key.hmac_key))
    assert again.status == 200 and again.headers["Location"] == created.headers["Location"]


async def test_existing_account_returns_whatever_the_binding(required: AcmeServer) -> None:
    """7.3.1: newAccount with a known account key returns that account, with or without
    a binding, even one that would not verify, and even once its EAB key is revoked."""
    key = await make_key(required)
    client = required.client()
    created = await client.new_account(
        externalAccountBinding=binding(client, key.kid, key.hmac_key))
    await required.store.revoke_eab_key(key.kid, required.clock.now())
    for extra in ({}, {"externalAccountBinding": "junk"},
                  {"externalAccountBinding": binding(client, key.kid, bytes(32))}):
        again = await client.new_account(**extra)
        assert again.status == 200 and again.headers["Location"] == created.headers["Location"]


async def test_expired_key_is_unauthorized(required: AcmeServer) -> None:
    key = await make_key(required, valid_for=timedelta(days=1))
    required.clock.advance(timedelta(days=1))
    doc = await refused(required, key)
    assert "expired" in doc["detail"]


async def test_revoked_key_is_unauthorized(required: AcmeServer) -> None:
    key = await make_key(required)
    await required.store.revoke_eab_key(key.kid, required.clock.now())
    doc = await refused(required, key)
    assert "was revoked" in doc["detail"]


async def test_state_is_told_only_to_the_holder_of_the_hmac_key(required: AcmeServer) -> None:
    """A revoked key with a wrong MAC is refused for the MAC: who does not hold the HMAC
    key learns nothing of the key's state."""
    key = await make_key(required)
    await required.store.revoke_eab_key(key.kid, required.clock.now())
    client = required.client()
    response = await client.new_account(
        externalAccountBinding=binding(client, key.kid, bytes(32)))
    assert "MAC does not verify" in assert_problem(response, 403, "unauthorized")["detail"]


async def test_binding_for_another_account_key_is_unauthorized(required: AcmeServer) -> None:
    """7.3.4 step 5: the payload must be the key that signed the outer JWS."""
    key = await make_key(required)
    doc = await refused(required, key, payload_key=ec.generate_private_key(ec.SECP256R1()))
    assert "not the key that signed" in doc["detail"]


@pytest.mark.parametrize(("change", "detail"), [
    ({"alg": "RS256"}, "not a MAC algorithm"),
    ({"alg": "none"}, "not a MAC algorithm"),
    ({"nonce": "abc"}, "nonce"),
    ({"url": "https://ca.test:8555/acme/new-order"}, "url"),
    ({"kid": ""}, "kid"),
    ({"jwk": {"kty": "oct"}}, "jwk"),
    ({"b64": False}, '"b64" or "crit"'),
    ({"crit": ["exp"]}, '"b64" or "crit"'),
])
async def test_malformed_binding_header(required: AcmeServer, change: dict[str, Any],
                                        detail: str) -> None:
    """7.3.4 step 2: alg a MAC, kid the CA's, no nonce, url that of the outer JWS."""
    key = await make_key(required)
    client = required.client()
    change = dict(change)
    kid = change.pop("kid", key.kid)
    eab = binding(client, kid, key.hmac_key, **change)
    response = await client.new_account(externalAccountBinding=eab)
    doc = assert_problem(response, 400, "malformed")
    assert detail in doc["detail"] and "\n" not in doc["detail"]


@pytest.mark.parametrize("eab", [
    "a string", [], {"protected": "x"},
    {"protected": "!!", "payload": "", "signature": ""},
    {"protected": b64(b"[]"), "payload": "", "signature": ""},
])
async def test_malformed_binding_structure(required: AcmeServer, eab: Any) -> None:
    """7.3.4 step 1: a well-formed flattened JWS, or malformed."""
    response = await required.client().new_account(externalAccountBinding=eab)
    assert_problem(response, 400, "malformed")


async def test_payload_that_is_no_key_is_malformed(required: AcmeServer) -> None:
    key = await make_key(required)
    client = required.client()
    eab = binding(client, key.kid, key.hmac_key)
    eab["payload"] = b64(b'{"kty":"nothing"}')
    mac = hmac.new(key.hmac_key, f"{eab['protected']}.{eab['payload']}".encode(),
                   hashlib.sha256).digest()
    eab["signature"] = b64(mac)
    response = await client.new_account(externalAccountBinding=eab)
    assert "not a public JWK" in assert_problem(response, 400, "malformed")["detail"]


async def test_racing_accounts_bind_one_key_once(required: AcmeServer) -> None:
    """Two new accounts with one EAB key at once: one 201, one unauthorized."""
    key = await make_key(required)
    clients = [required.client(), required.client()]
    responses = await asyncio.gather(*(
        c.new_account(externalAccountBinding=binding(c, key.kid, key.hmac_key))
        for c in clients))
    assert sorted(r.status for r in responses) == [201, 403]
    loser = next(r for r in responses if r.status == 403)
    assert "already bound" in assert_problem(loser, 403, "unauthorized")["detail"]


async def test_revoked_key_stops_new_orders(required: AcmeServer) -> None:
    """Revoking a key stops its account's new orders (unauthorized)."""
    key = await make_key(required)
    client = required.client()
    created = await client.new_account(
        externalAccountBinding=binding(client, key.kid, key.hmac_key))
    assert created.status == 201
    assert (await client.new_order("www.bluerobin.local")).status == 201
    await required.store.revoke_eab_key(key.kid, required.clock.now())
    response = await client.new_order("www.bluerobin.local")
    doc = assert_problem(response, 403, "unauthorized")
    assert "was revoked" in doc["detail"] and key.kid in doc["detail"]


def test_new_keys_never_look_like_an_option() -> None:
    """certbot --eab-hmac-key KEY and lego --hmac KEY take a leading "-" for an option:
    neither the kid nor the HMAC key text starts with one (of 2000 draws, about 31
    would without the redraw)."""
    from datetime import UTC, datetime

    keys = [new_key("t", datetime.now(UTC)) for _ in range(2000)]
    assert not any(k.kid.startswith("-") or hmac_key_text(k).startswith("-") for k in keys)
    assert len({k.kid for k in keys}) == len({k.hmac_key for k in keys}) == 2000


async def test_the_account_gets_only_its_keys_profiles_and_domains(required: AcmeServer
                                                                   ) -> None:
    """The issue's "a team's key only gets that team's names": a name outside the key's
    domains is rejectedIdentifier (RFC 8555 6.7), a profile outside its profiles
    invalidProfile (draft-ietf-acme-profiles)."""
    key = await make_key(required, profiles=("client",), domains=("team.bluerobin.local",))
    client = required.client()
    created = await client.new_account(
        externalAccountBinding=binding(client, key.kid, key.hmac_key))
    assert created.status == 201
    outside = await client.new_order("www.bluerobin.local")
    assert_problem(outside, 400, "rejectedIdentifier")
    inside = await client.new_order("worker.team.bluerobin.local")
    assert inside.status == 201 and inside.json()["profile"] == "client", inside.body
    other_profile = await client.new_order("worker.team.bluerobin.local", profile="server")
    assert_problem(other_profile, 400, "invalidProfile")
