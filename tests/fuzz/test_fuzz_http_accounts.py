"""Fuzz: newAccount and keyChange (RFC 8555 7.3, 7.3.5) through the real server.

newAccount is signed by a fresh key, by a live account's key or by a deactivated
account's key, with its payload valid, mutated or any JSON (onlyReturnExisting,
termsOfServiceAgreed of any type; the server asks for agreement to its terms).
keyChange moves a fresh account to a fresh key, to another account's key (409) or to
its own key, with the inner JWS's header and payload valid or mutated and signed
again, and the outer payload (the inner JWS as an object) valid or mutated.
Besides world.check: an existing key never makes a new account, a deactivated one is
never answered with an account, and only a key nobody holds can become an account's.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given
from hypothesis import strategies as st

from tests.acme_client import alg_of, b64, jwk_of, sign
from tests.fuzz.strategies import JSON, dumps, fuzz, mutated_object
from tests.fuzz.world import JWK, KID, TEMPLATES, URL, Target, World, check, fill
from tests.protocol.helpers import NEW_ACCOUNT

NEW_ACCOUNT_PAYLOADS = (
    st.just(TEMPLATES["newAccount"])
    | st.fixed_dictionaries({}, optional={"onlyReturnExisting": st.booleans() | JSON,
                                          "termsOfServiceAgreed": st.booleans() | JSON,
                                          "contact": st.just(["mailto:c@bluerobin.local"])})
    | mutated_object(TEMPLATES["newAccount"])
    | JSON
)


@fuzz(0.5)
@given(key=st.sampled_from(["fresh", "existing", "deactivated"]),
       payload=NEW_ACCOUNT_PAYLOADS)
@example(key="fresh", payload=TEMPLATES["newAccount"])  # 201
@example(key="existing", payload={})  # 200, the existing account (7.3.1)
@example(key="existing", payload={"onlyReturnExisting": True})
@example(key="deactivated", payload={"onlyReturnExisting": True})  # 401 (7.3.6)
@example(key="fresh", payload={"onlyReturnExisting": True})  # accountDoesNotExist
@example(key="fresh", payload={"termsOfServiceAgreed": "yes"})  # malformed
@example(key="fresh", payload={"termsOfServiceAgreed": False})  # userActionRequired
async def test_new_account(world: World, key: str, payload: Any) -> None:
    target = await world.target("newAccount")
    holder = {"existing": world.second, "deactivated": world.deactivated}.get(key)
    if holder is not None:
        target.key = holder.key
    response = await world.send(target, target.header(await world.nonce()), payload)
    check(response)
    if response.status < 300:
        if holder is not None:
            assert holder is world.second and response.status == 200, response.status
            assert response.headers["Location"] == world.second.kid
        else:
            assert response.status == 201 and isinstance(payload, dict), response.status
            assert payload.get("onlyReturnExisting") is not True, payload
            assert payload.get("termsOfServiceAgreed") is True, payload  # 7.3.3


NEW_ALG, NEW_JWK = "⟨new-alg⟩", "⟨new-jwk⟩"  # of the key the account moves to
INNER_HEADER = {"alg": NEW_ALG, "jwk": NEW_JWK, "url": URL}
INNER_PAYLOAD = {"account": KID, "oldKey": JWK}
OUTER = {"protected": "⟨inner.protected⟩", "payload": "⟨inner.payload⟩",
         "signature": "⟨inner.signature⟩"}


@fuzz(0.5)
@given(new_key=st.sampled_from(["fresh", "in use", "same"]),
       header=st.just(INNER_HEADER) | mutated_object(INNER_HEADER),
       payload=st.just(INNER_PAYLOAD) | mutated_object(INNER_PAYLOAD),
       outer=st.just(OUTER) | mutated_object(OUTER))
@example(new_key="fresh", header=INNER_HEADER, payload=INNER_PAYLOAD, outer=OUTER)  # 200
@example(new_key="in use", header=INNER_HEADER, payload=INNER_PAYLOAD, outer=OUTER)  # 409
@example(new_key="same", header=INNER_HEADER, payload=INNER_PAYLOAD, outer=OUTER)
@example(new_key="fresh", header={**INNER_HEADER, "url": NEW_ACCOUNT}, payload=INNER_PAYLOAD,
         outer=OUTER)
@example(new_key="fresh", header={**INNER_HEADER, "nonce": "AAAA"}, payload=INNER_PAYLOAD,
         outer=OUTER)
@example(new_key="fresh", header=INNER_HEADER, payload={**INNER_PAYLOAD, "account": "x"},
         outer=OUTER)
async def test_key_change(world: World, new_key: str, header: Any, payload: Any,
                          outer: Any) -> None:
    target = await world.target("keyChange")
    key = {"fresh": ec.generate_private_key(ec.SECP256R1()), "in use": world.second.key,
           "same": target.key}[new_key]
    target.tokens.update({NEW_ALG: alg_of(key), NEW_JWK: jwk_of(key)})
    protected = fill(header, target.tokens)
    inner = sign(key, protected if isinstance(protected, dict) else {},
                 dumps(fill(payload, target.tokens)))
    if not isinstance(protected, dict):
        inner["protected"] = b64(dumps(protected))
    target.tokens.update({f"⟨inner.{name}⟩": value for name, value in inner.items()})
    response = await world.send(target, target.header(await world.nonce()), outer)
    check(response)
    if new_key == "in use" and response.status == 409:
        assert response.headers["Location"] == world.second.kid
    assert response.status != 200 or new_key == "fresh", response.status
    if response.status == 200:  # the account answers to the new key, not the old one
        assert await status_as(world, target, key) == 200
        assert await status_as(world, target, target.key) == 400


async def status_as(world: World, target: Target, key: Any) -> int:
    """The status of a POST-as-GET of the target's account, signed by ``key``."""
    account = Target(str(target.kid), key, target.kid, target.tokens)
    return (await world.send(account, account.header(await world.nonce()), None)).status
