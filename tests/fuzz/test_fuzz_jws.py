"""Fuzz: the JWS pipeline (acme_ca/api/jws.py) raises AcmeProblem and nothing else.

Entry points: verify_jws (every POST), verify_key_change_inner (keyChange) and
parse_jwk (every embedded key). Inputs: arbitrary bytes, and valid JWS with their
members, their protected header or their bytes mutated; a mutated header is signed
again, so that it reaches the checks after the signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given
from hypothesis import strategies as st

from acme_ca.api.jwk import parse_jwk
from acme_ca.api.jws import AccountKey, verify_jws, verify_key_change_inner
from acme_ca.domain.problems import AcmeProblem, ProblemType
from tests.acme_client import alg_of, b64, jwk_of, sign
from tests.fuzz.strategies import JSON, dumps, fuzz, mutated_bytes, mutated_object

URL = "https://ca.test:8555/acme/key-change"
KID = "https://ca.test:8555/acme/acct/fuzz"
KEY = ec.generate_private_key(ec.SECP256R1())
NEW_KEY = ec.generate_private_key(ec.SECP256R1())
ACCOUNT_KEY = parse_jwk(jwk_of(KEY))


def header(*, kid: bool) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": alg_of(KEY), "nonce": "bm9uY2U", "url": URL}
    return {**base, "kid": KID} if kid else {**base, "jwk": jwk_of(KEY)}


def valid_jws(*, kid: bool, payload: Any = None) -> dict[str, str]:
    body = dumps(payload if payload is not None else {"identifiers": []})
    return sign(KEY, header(kid=kid), body)


async def key_for_kid(kid: str) -> AccountKey:
    if kid != KID:
        raise AcmeProblem(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no such account")
    return ACCOUNT_KEY


async def any_nonce(nonce: str) -> bool:
    return True  # every nonce is fresh here, so that fuzzing gets past it


async def verify(body: bytes, auth: Any = "either") -> None:
    with contextlib.suppress(AcmeProblem):
        await verify_jws(body, content_type="application/jose+json", url=URL, auth=auth,
                         key_for_kid=key_for_kid, consume_nonce=any_nonce)


@fuzz()
@given(st.binary(max_size=600) | st.builds(dumps, JSON))
async def test_any_body(body: bytes) -> None:
    """Arbitrary bytes, and arbitrary JSON, as a request body."""
    await verify(body)


@fuzz()
@given(kid=st.booleans(), data=st.data())
@example(kid=False, data=None).via("the black-box fuzz's 500: non-ASCII in a member")
async def test_mutated_members(kid: bool, data: st.DataObject | None) -> None:
    """A valid JWS whose members are replaced by any JSON value (text of any
    characters among them), removed, or joined by others."""
    jws: Any = valid_jws(kid=kid)
    if data is None:
        jws = {**jws, "payload": jws["payload"][:4] + "é" + jws["payload"][4:]}
    else:
        jws = data.draw(mutated_object(jws))
    await verify(dumps(jws))


@fuzz()
@given(kid=st.booleans(), data=st.data())
async def test_mutated_protected_header_signed_again(kid: bool, data: st.DataObject) -> None:
    """A protected header with members replaced, removed or added, signed again with
    the key: it passes the signature check and meets every later check."""
    protected = data.draw(mutated_object(header(kid=kid)))
    payload = data.draw(st.none() | st.builds(dumps, JSON))
    if isinstance(protected, dict):
        jws = sign(KEY, protected, payload)
    else:  # a header that is not an object: nothing to sign it as
        jws = {**sign(KEY, {}, payload), "protected": b64(dumps(protected))}
    await verify(dumps(jws), data.draw(st.sampled_from(["jwk", "kid", "either"])))


@fuzz()
@given(kid=st.booleans(), data=st.data())
async def test_mutated_bytes(kid: bool, data: st.DataObject) -> None:
    """The bytes of a valid request, a few flipped, inserted, deleted or repeated."""
    await verify(data.draw(mutated_bytes(dumps(valid_jws(kid=kid)))))


def inner_jws() -> dict[str, str]:
    protected = {"alg": alg_of(NEW_KEY), "jwk": jwk_of(NEW_KEY), "url": URL}
    return sign(NEW_KEY, protected, dumps({"account": KID, "oldKey": jwk_of(KEY)}))


async def outer_request() -> Any:
    return await verify_jws(dumps(valid_jws(kid=True)), content_type="application/jose+json",
                            url=URL, auth="kid", key_for_kid=key_for_kid,
                            consume_nonce=any_nonce)


@fuzz()
@given(data=st.data())
async def test_key_change_inner_jws(data: st.DataObject) -> None:
    """keyChange (RFC 8555 7.3.5): the inner JWS mutated, as an object, in its
    protected header (signed again by the new key) or in its payload."""
    outer = await outer_request()
    inner: Any = inner_jws()
    how = data.draw(st.integers(0, 2))
    if how == 0:
        inner = data.draw(mutated_object(inner))
    else:
        protected = {"alg": alg_of(NEW_KEY), "jwk": jwk_of(NEW_KEY), "url": URL}
        payload: Any = {"account": KID, "oldKey": jwk_of(KEY)}
        if how == 1:
            protected = data.draw(mutated_object(protected))
        else:
            payload = data.draw(mutated_object(payload))
        if isinstance(protected, dict):
            inner = sign(NEW_KEY, protected, dumps(payload))
    with contextlib.suppress(AcmeProblem):
        verify_key_change_inner(inner if isinstance(inner, dict) else {"x": inner},
                                outer=outer)


@fuzz()
@given(st.sampled_from([jwk_of(KEY), jwk_of(ec.generate_private_key(ec.SECP384R1()))])
       .flatmap(mutated_object) | JSON)
@example({"kty": "EC", "crv": [], "x": None, "y": None})  # was a TypeError: unhashable
def test_parse_jwk(jwk: Any) -> None:
    """Any JSON as a JWK, and valid JWKs mutated: a key or badPublicKey."""
    try:
        parse_jwk(jwk)
    except AcmeProblem as problem:
        assert problem.type is ProblemType.BAD_PUBLIC_KEY, problem


def test_the_examples_are_valid_requests() -> None:
    """The seeds the mutations start from are accepted unchanged, so the mutations
    start from the inside of the pipeline."""
    for kid in (False, True):
        verified = asyncio.run(verify_jws(
            dumps(valid_jws(kid=kid)), content_type="application/jose+json", url=URL,
            auth="either", key_for_kid=key_for_kid, consume_nonce=any_nonce))
        assert json.loads(verified.payload) == {"identifiers": []}
    outer = asyncio.run(outer_request())
    assert verify_key_change_inner(inner_jws(), outer=outer).thumbprint != outer.key.thumbprint
