"""The JWS pipeline (acme_ca/api/jws.py) against real signatures: the requests it
accepts, and the protected header's rules (RFC 8555 6.2, 6.4, 6.5): the algorithm
allowlist, "jwk" or "kid", "url" and "nonce".

JWS are built with josepy's algorithm objects (RSA, EC) and with cryptography
(Ed25519), then broken one rule at a time. The signature, the JSON envelope and the
account key are in test_jws_format.py; the keyChange inner JWS in test_jws_key_change.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import josepy as jose
import pytest

from acme_ca.api.jwk import parse_jwk
from acme_ca.api.jws import ALGORITHMS
from acme_ca.domain.problems import AcmeProblem, ProblemType
from tests.api.jws_helpers import (
    CT,
    KID,
    OTHER_EC,
    PRIVATE_KEYS,
    URL,
    FakeServer,
    b64,
    is_problem,
    make_jws,
    public_jwk,
    sign,
)

BOULDER_BAD_NONCE = 'JWS has an invalid anti-replay nonce: "{}"'


class CertbotHeader(jose.Header):
    """certbot's acme.jws.Header: the registered headers plus nonce and url."""

    nonce: str | None = jose.field("nonce", omitempty=True)
    url: str | None = jose.field("url", omitempty=True)


class CertbotSignature(jose.Signature):
    __slots__ = jose.Signature._orig_slots
    header_cls = CertbotHeader
    header: CertbotHeader = jose.field(
        "header", omitempty=True, default=CertbotHeader(), decoder=CertbotHeader.from_json
    )


class CertbotJWS(jose.JWS):
    signature_cls = CertbotSignature
    __slots__ = jose.JWS._orig_slots


# --- accepted requests -----------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_every_algorithm_with_its_key_and_embedded_jwk(server: FakeServer, alg: str) -> None:
    """RFC 8555 6.2: each allowlisted algorithm verifies with a key of its type."""
    private = PRIVATE_KEYS[alg]
    req = await server.verify(make_jws(private, alg, payload={"hello": "world"}), auth="jwk")
    assert req.payload == json.dumps({"hello": "world"}).encode()
    assert req.json() == {"hello": "world"}
    assert req.url == URL and req.nonce == "nonce-1" and req.kid is None
    assert not req.post_as_get
    assert req.protected["alg"] == alg
    assert json.loads(req.key.jwk) == public_jwk(private)
    digest = hashlib.sha256(req.key.jwk.encode()).digest()
    assert req.key.thumbprint == b64(digest)  # RFC 7638: the jwk string is the canonical form
    assert server.nonces == {"nonce-2"}


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_every_algorithm_with_kid_uses_the_stored_key(server: FakeServer, alg: str) -> None:
    """RFC 8555 6.2: a "kid" request verifies with the account's stored key."""
    private = PRIVATE_KEYS[alg]
    server.accounts[KID] = parse_jwk(public_jwk(private))
    req = await server.verify(make_jws(private, alg, kid=KID), auth="kid")
    assert req.kid == KID and req.key == server.accounts[KID]
    assert server.kid_lookups == [KID]


async def test_kid_request_signed_by_another_key_is_rejected(server: FakeServer) -> None:
    """RFC 8555 6.2: the signature must verify with the key of the account named by kid."""
    server.accounts[KID] = parse_jwk(public_jwk(PRIVATE_KEYS["ES256"]))
    problem = await server.problem(make_jws(OTHER_EC, "ES256", kid=KID))
    assert is_problem(problem, ProblemType.MALFORMED)
    assert problem.detail == "JWS signature is invalid"
    assert server.nonces == {"nonce-1", "nonce-2"}  # the nonce survives a bad signature


async def test_josepy_jws_sign_interoperates(server: FakeServer) -> None:
    """A JWS made the way certbot's acme.jws makes one (josepy JWS.sign, flat JSON)."""

    private = PRIVATE_KEYS["ES384"]
    signed = CertbotJWS.sign(
        b'{"termsOfServiceAgreed": true}',
        key=jose.JWKEC(key=private),
        alg=jose.ES384,
        nonce="nonce-2",
        url=URL,
        protect=frozenset(["alg", "jwk", "nonce", "url"]),
    )
    req = await server.verify(signed.json_dumps().encode(), auth="jwk")
    assert req.json() == {"termsOfServiceAgreed": True}
    assert req.nonce == "nonce-2"


async def test_post_as_get_has_an_empty_payload(server: FakeServer) -> None:
    """RFC 8555 6.3: POST-as-GET carries the empty string; it is no JSON object."""
    req = await server.verify(make_jws(PRIVATE_KEYS["ES256"], "ES256", payload=b""))
    assert req.post_as_get and req.payload == b""
    with pytest.raises(AcmeProblem) as info:
        req.json()
    assert info.value.type is ProblemType.MALFORMED


@pytest.mark.parametrize("payload", [b"[]", b"null", b"not json", b'{"a": 1, "a": 2}'])
async def test_payload_must_be_one_json_object(server: FakeServer, payload: bytes) -> None:
    """RFC 8555 7: request payloads are JSON objects (no duplicate members, RFC 7515 5.2)."""
    req = await server.verify(make_jws(PRIVATE_KEYS["ES256"], "ES256", payload=payload))
    with pytest.raises(AcmeProblem) as info:
        req.json()
    assert info.value.type is ProblemType.MALFORMED


@pytest.mark.parametrize("content_type", [CT, "application/jose+json; charset=utf-8"])
async def test_content_type_parameters_are_tolerated(server: FakeServer, content_type: str) -> None:
    """RFC 8555 6.2: the media type is application/jose+json (parameters aside)."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256")
    assert (await server.verify(jws, content_type=content_type)).nonce == "nonce-1"


# --- algorithms and keys ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "HS256", "RS384", "ES256K", "", None, 256])
async def test_unlisted_algorithms_give_the_algorithms_list(server: FakeServer, alg: Any) -> None:
    """RFC 8555 6.2: "none" and MACs are refused with badSignatureAlgorithm + algorithms."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256", extra={"alg": alg})
    problem = await server.problem(jws)
    assert is_problem(problem, ProblemType.BAD_SIGNATURE_ALGORITHM)
    assert problem.to_json()["algorithms"] == list(ALGORITHMS)


async def test_missing_alg_is_bad_signature_algorithm(server: FakeServer) -> None:
    """RFC 7515 4.1.1: "alg" is required; RFC 8555 6.2 answers badSignatureAlgorithm."""
    good = make_jws(PRIVATE_KEYS["ES256"], "ES256")
    header = json.loads(base64.urlsafe_b64decode(good["protected"] + "=="))
    del header["alg"]
    problem = await server.problem({**good, "protected": b64(json.dumps(header).encode())})
    assert is_problem(problem, ProblemType.BAD_SIGNATURE_ALGORITHM)


@pytest.mark.parametrize(
    ("alg", "key_alg"),
    [
        ("ES256", "ES384"),
        ("ES512", "ES256"),
        ("ES384", "RS256"),
        ("RS256", "ES256"),
        ("PS256", "EdDSA"),
        ("EdDSA", "RS256"),
        ("EdDSA", "ES256"),
    ],
)
async def test_algorithm_must_fit_the_key(server: FakeServer, alg: str, key_alg: str) -> None:
    """RFC 8555 6.2 / RFC 7518 3.4: the algorithm matches the key type and curve."""
    jwk = public_jwk(PRIVATE_KEYS[key_alg])
    jws = make_jws(None, alg, jwk=jwk, signature=b"\x01" * 64)
    problem = await server.problem(jws)
    assert is_problem(problem, ProblemType.BAD_SIGNATURE_ALGORITHM)
    assert problem.extra["algorithms"] == list(ALGORITHMS)
    server.accounts[KID] = parse_jwk(jwk)
    problem = await server.problem(make_jws(None, alg, kid=KID, signature=b"\x01" * 64))
    assert is_problem(problem, ProblemType.BAD_SIGNATURE_ALGORITHM)


# --- jwk, kid, nonce, url ---------------------------------------------------------------


async def test_jwk_and_kid_together_are_malformed(server: FakeServer) -> None:
    """RFC 8555 6.2: "jwk" and "kid" are mutually exclusive."""
    private = PRIVATE_KEYS["ES256"]
    problem = await server.problem(make_jws(private, "ES256", extra={"kid": KID}))
    assert is_problem(problem, ProblemType.MALFORMED)


async def test_neither_jwk_nor_kid_is_malformed(server: FakeServer) -> None:
    """RFC 8555 6.2: the protected header has either "jwk" or "kid"."""
    private = PRIVATE_KEYS["ES256"]
    good = make_jws(private, "ES256")
    header = json.loads(base64.urlsafe_b64decode(good["protected"] + "=="))
    del header["jwk"]
    protected = b64(json.dumps(header).encode())
    jws = {**good, "protected": protected}
    jws["signature"] = b64(sign("ES256", private, f"{protected}.{good['payload']}".encode()))
    assert is_problem(await server.problem(jws), ProblemType.MALFORMED)


async def test_kid_where_jwk_is_required(server: FakeServer) -> None:
    """RFC 8555 6.2: newAccount (and revocation by certificate key) need "jwk"."""
    private = PRIVATE_KEYS["ES256"]
    server.accounts[KID] = parse_jwk(public_jwk(private))
    problem = await server.problem(make_jws(private, "ES256", kid=KID), auth="jwk")
    assert is_problem(problem, ProblemType.MALFORMED)
    assert server.kid_lookups == []


async def test_jwk_where_kid_is_required(server: FakeServer) -> None:
    """RFC 8555 6.2: every other resource needs "kid"."""
    problem = await server.problem(make_jws(PRIVATE_KEYS["ES256"], "ES256"), auth="kid")
    assert is_problem(problem, ProblemType.MALFORMED)


async def test_unknown_kid_is_what_the_lookup_raises(server: FakeServer) -> None:
    """RFC 8555 6.2: an unknown account is the lookup's accountDoesNotExist."""
    problem = await server.problem(make_jws(PRIVATE_KEYS["ES256"], "ES256", kid=KID))
    assert is_problem(problem, ProblemType.ACCOUNT_DOES_NOT_EXIST)


@pytest.mark.parametrize("kid", ["", 7, None])
async def test_kid_must_be_a_non_empty_string(server: FakeServer, kid: Any) -> None:
    """RFC 8555 6.2: "kid" is the account URL."""
    jws = make_jws(None, "ES256", kid="x", extra={"kid": kid}, signature=b"\x01" * 64)
    assert is_problem(await server.problem(jws), ProblemType.MALFORMED)


async def test_url_mismatch_is_unauthorized(server: FakeServer) -> None:
    """RFC 8555 6.4: a signed "url" other than the request URL is unauthorized."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256", url=URL + "/other")
    problem = await server.problem(jws)
    assert is_problem(problem, ProblemType.UNAUTHORIZED, 403)
    assert server.nonces == {"nonce-1", "nonce-2"}


async def test_missing_url_is_malformed(server: FakeServer) -> None:
    """RFC 8555 6.4: "url" MUST be in the protected header."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256", extra={"url": None})
    assert is_problem(await server.problem(jws), ProblemType.MALFORMED)


async def test_missing_nonce_is_bad_nonce(server: FakeServer) -> None:
    """RFC 8555 6.5: a request without "nonce" is refused with badNonce."""
    problem = await server.problem(make_jws(PRIVATE_KEYS["ES256"], "ES256", nonce=None))
    assert is_problem(problem, ProblemType.BAD_NONCE)


async def test_replayed_nonce_is_bad_nonce_in_boulder_words(server: FakeServer) -> None:
    """RFC 8555 6.5: a nonce works once; acme.sh matches Boulder's detail text."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256")
    await server.verify(jws)
    problem = await server.problem(jws)
    assert is_problem(problem, ProblemType.BAD_NONCE)
    assert problem.detail == BOULDER_BAD_NONCE.format("nonce-1")
    assert "JWS has an invalid anti-replay nonce" in problem.detail


@pytest.mark.parametrize("nonce", ["never-issued", "has space", "x" * 129])
async def test_unknown_or_malformed_nonce_is_bad_nonce(server: FakeServer, nonce: str) -> None:
    """RFC 8555 6.5.1: only a base64url nonce this server issued is accepted."""
    problem = await server.problem(make_jws(PRIVATE_KEYS["ES256"], "ES256", nonce=nonce))
    assert is_problem(problem, ProblemType.BAD_NONCE)
    assert problem.detail == f"JWS has an invalid anti-replay nonce: {json.dumps(nonce)}"


@pytest.mark.parametrize("extra", [{"b64": False}, {"crit": ["b64"], "b64": False}, {"crit": []}])
async def test_b64_and_crit_are_refused(server: FakeServer, extra: dict[str, Any]) -> None:
    """RFC 7797 / RFC 7515 4.1.11: no unencoded payloads, no critical extensions."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256", extra=extra)
    assert is_problem(await server.problem(jws), ProblemType.MALFORMED)
