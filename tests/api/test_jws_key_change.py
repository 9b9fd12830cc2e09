"""The keyChange inner JWS (RFC 8555 7.3.5; acme_ca/api/jws.py
``verify_key_change_inner``): signed by the new key, naming the account and its old
key, under the same algorithm and key rules as every JWS (RFC 8555 6.2).

Signed as in test_jws.py, then broken one rule at a time.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from acme_ca.api.jwk import parse_jwk
from acme_ca.api.jws import VerifiedRequest, verify_key_change_inner
from acme_ca.domain.problems import AcmeProblem, ProblemType
from tests.api.jws_helpers import (
    KID,
    OTHER_EC,
    PRIVATE_KEYS,
    URL,
    FakeServer,
    is_problem,
    make_jws,
    public_jwk,
    rsa_key,
)

KEY_CHANGE_URL = "https://ca.example:8555/acme/key-change"
OTHER_ED = ed25519.Ed25519PrivateKey.generate()


# --- keyChange inner JWS (RFC 8555 7.3.5) ----------------------------------------------

OLD, NEW = PRIVATE_KEYS["ES256"], PRIVATE_KEYS["EdDSA"]


async def outer_request(server: FakeServer, inner: Mapping[str, Any]) -> VerifiedRequest:
    server.accounts[KID] = parse_jwk(public_jwk(OLD))
    nonce = secrets.token_urlsafe(16)
    server.nonces.add(nonce)
    jws = make_jws(OLD, "ES256", kid=KID, url=KEY_CHANGE_URL, payload=dict(inner), nonce=nonce)
    return await server.verify(jws, auth="kid", url=KEY_CHANGE_URL)


def inner_jws(**changes: Any) -> dict[str, str]:
    payload = changes.pop("payload", {"account": KID, "oldKey": public_jwk(OLD)})
    options: dict[str, Any] = {"url": KEY_CHANGE_URL, "nonce": None, "payload": payload}
    options.update(changes)
    private = options.pop("private", NEW)
    return make_jws(private, options.pop("alg", "EdDSA"), **options)


async def test_key_change_inner_jws_returns_the_new_key(server: FakeServer) -> None:
    """RFC 8555 7.3.5: a good inner JWS yields the new account key."""
    outer = await outer_request(server, inner_jws())
    new_key = verify_key_change_inner(outer.json(), outer=outer)
    assert new_key == parse_jwk(public_jwk(NEW))


async def inner_problem(server: FakeServer, inner: Mapping[str, Any]) -> AcmeProblem:
    outer = await outer_request(server, inner)
    with pytest.raises(AcmeProblem) as info:
        verify_key_change_inner(outer.json(), outer=outer)
    return info.value


@pytest.mark.parametrize(
    ("name", "inner"),
    [
        ("unprotected header", {**inner_jws(), "header": {"nonce": "x"}}),
        ("signatures array", {"payload": inner_jws()["payload"], "signatures": []}),
        ("has a nonce", inner_jws(nonce="nonce-2")),
        ("kid instead of jwk", inner_jws(kid=KID)),
        ("jwk and kid", inner_jws(extra={"kid": KID})),
        ("other url", inner_jws(url=URL)),
        ("no url", inner_jws(extra={"url": None})),
        ("signed by another key", inner_jws(jwk=public_jwk(NEW), private=OTHER_ED)),
        ("signed by the old key", inner_jws(jwk=public_jwk(OTHER_EC), private=OLD, alg="ES256")),
        ("other account", inner_jws(payload={"account": KID + "x", "oldKey": public_jwk(OLD)})),
        ("no account", inner_jws(payload={"oldKey": public_jwk(OLD)})),
        ("other old key", inner_jws(payload={"account": KID, "oldKey": public_jwk(OTHER_EC)})),
        ("no old key", inner_jws(payload={"account": KID})),
        ("broken old key", inner_jws(payload={"account": KID, "oldKey": {"kty": "EC"}})),
        ("payload not an object", inner_jws(payload=b"[]")),
        ("same key", inner_jws(private=OLD, alg="ES256")),
        ("crit", inner_jws(extra={"crit": ["exp"]})),
    ],
)
async def test_key_change_inner_failures_are_malformed(
    server: FakeServer, name: str, inner: Mapping[str, Any]
) -> None:
    """RFC 8555 7.3.5: each inner check that fails rejects the request as malformed."""
    problem = await inner_problem(server, inner)
    assert is_problem(problem, ProblemType.MALFORMED), name


async def test_key_change_inner_algorithm_rules(server: FakeServer) -> None:
    """RFC 8555 7.3.5 / 6.2: the inner JWS follows the same algorithm rules."""
    problem = await inner_problem(server, inner_jws(extra={"alg": "HS256"}))
    assert is_problem(problem, ProblemType.BAD_SIGNATURE_ALGORITHM)
    mismatch = inner_jws(alg="ES256", jwk=public_jwk(NEW), signature=b"\x01" * 64)
    problem = await inner_problem(server, mismatch)
    assert is_problem(problem, ProblemType.BAD_SIGNATURE_ALGORITHM)


async def test_key_change_new_key_must_be_acceptable(server: FakeServer) -> None:
    """RFC 8555 7.3.5: the new key must itself be an acceptable account key."""
    weak = rsa_key(1024)
    problem = await inner_problem(server, inner_jws(private=weak, alg="RS256"))
    assert is_problem(problem, ProblemType.BAD_PUBLIC_KEY)
