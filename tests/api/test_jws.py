"""The JWS pipeline (acme_ca/api/jws.py) against real signatures.

JWS are built with josepy's algorithm objects (RSA, EC) and with cryptography
(Ed25519), then broken one rule at a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.api.jwk import parse_jwk
from acme_ca.api.jws import ALGORITHMS, VerifiedRequest, verify_key_change_inner
from acme_ca.domain.problems import AcmeProblem, ProblemType
from tests.api.jws_helpers import (
    CT,
    PRIVATE_KEYS,
    RSA_KEY,
    URL,
    FakeServer,
    b64,
    encode,
    is_problem,
    make_jws,
    public_jwk,
    rsa_key,
    sign,
)

KID = "https://ca.example:8555/acme/acct/acct1"
KEY_CHANGE_URL = "https://ca.example:8555/acme/key-change"
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
BOULDER_BAD_NONCE = 'JWS has an invalid anti-replay nonce: "{}"'
OTHER_EC = ec.generate_private_key(ec.SECP256R1())
OTHER_ED = ed25519.Ed25519PrivateKey.generate()


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


# --- signatures ------------------------------------------------------------------------


async def test_random_signature_is_invalid(server: FakeServer) -> None:
    """RFC 7515 5.2: the signature must verify (Boulder answers malformed)."""
    jws = make_jws(PRIVATE_KEYS["RS256"], "RS256", signature=secrets.token_bytes(256))
    problem = await server.problem(jws)
    assert is_problem(problem, ProblemType.MALFORMED)
    assert problem.detail == "JWS signature is invalid"


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_tampered_payload_is_invalid(server: FakeServer, alg: str) -> None:
    """RFC 7515 5.2: the signature covers protected "." payload."""
    jws = make_jws(PRIVATE_KEYS[alg], alg, payload={"onlyReturnExisting": True})
    jws["payload"] = b64(b'{"onlyReturnExisting": false}')
    problem = await server.problem(jws)
    assert problem.detail == "JWS signature is invalid"
    assert server.nonces == {"nonce-1", "nonce-2"}


async def test_tampered_protected_header_is_invalid(server: FakeServer) -> None:
    """RFC 7515 5.2: the protected header is signed too (here: swapped nonce)."""
    private = PRIVATE_KEYS["ES256"]
    jws = make_jws(private, "ES256")
    jws["protected"] = make_jws(private, "ES256", nonce="nonce-2")["protected"]
    assert (await server.problem(jws)).detail == "JWS signature is invalid"


async def test_der_encoded_ecdsa_signature_is_invalid(server: FakeServer) -> None:
    """RFC 7518 3.4: ES256 signatures are raw r || s (64 bytes), not DER."""
    from cryptography.hazmat.primitives import hashes

    private = PRIVATE_KEYS["ES256"]
    good = make_jws(private, "ES256")
    msg = f"{good['protected']}.{good['payload']}".encode()
    der = private.sign(msg, ec.ECDSA(hashes.SHA256()))
    jws = {**good, "signature": b64(der)}
    assert (await server.problem(jws)).detail == "JWS signature is invalid"


# --- the envelope ----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", ""])
async def test_wrong_content_type_is_415(server: FakeServer, content_type: str | None) -> None:
    """RFC 8555 6.2: POST bodies are application/jose+json; Pebble answers 415."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256")
    problem = await server.problem(jws, content_type=content_type)
    assert is_problem(problem, ProblemType.MALFORMED, 415)


async def test_body_too_big_is_413(server: FakeServer) -> None:
    """RFC 8555 6.2 (server limits): an oversized body is refused before parsing."""
    body = encode(make_jws(PRIVATE_KEYS["ES256"], "ES256"))
    problem = await server.problem(body, max_body=len(body) - 1)
    assert is_problem(problem, ProblemType.MALFORMED, 413)
    assert (await server.verify(body, max_body=len(body))).nonce == "nonce-1"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'"jws"', b"\xff\xfe{}", b"[" * 20000 + b"]" * 20000, b"{NaN}"],
)
async def test_body_must_be_a_json_object(server: FakeServer, body: bytes) -> None:
    """RFC 7515 7.2: the flattened JSON serialization is a JSON object."""
    assert is_problem(await server.problem(body), ProblemType.MALFORMED)


async def test_unprotected_header_is_refused(server: FakeServer) -> None:
    """RFC 8555 6.2: the JWS MUST NOT have an unprotected header."""
    jws = {**make_jws(PRIVATE_KEYS["ES256"], "ES256"), "header": {"kid": KID}}
    problem = await server.problem(jws)
    assert is_problem(problem, ProblemType.MALFORMED)
    assert "unprotected" in problem.detail


async def test_general_serialization_is_refused(server: FakeServer) -> None:
    """RFC 8555 6.2: one signature, flattened; no "signatures" array."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256")
    general = {
        "payload": jws["payload"],
        "signatures": [{"protected": jws["protected"], "signature": jws["signature"]}],
    }
    assert is_problem(await server.problem(general), ProblemType.MALFORMED)


@pytest.mark.parametrize("change", ["drop", "extra", "number"])
async def test_exactly_three_string_members(server: FakeServer, change: str) -> None:
    """RFC 7515 7.2.2: protected, payload and signature, each a string."""
    jws: dict[str, Any] = dict(make_jws(PRIVATE_KEYS["ES256"], "ES256"))
    if change == "drop":
        del jws["signature"]
    elif change == "extra":
        jws["unexpected"] = "x"
    else:
        jws["payload"] = 7
    assert is_problem(await server.problem(jws), ProblemType.MALFORMED)


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
@pytest.mark.parametrize("spoil", ["pad", "standard", "junk", "length", "noncanonical"])
async def test_base64url_is_strict(server: FakeServer, member: str, spoil: str) -> None:
    """RFC 7515 2: base64url without padding, url-safe alphabet, nothing else."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256", payload=b"{}?>")  # b64 "e30_Pg"
    value = jws[member]
    if spoil == "pad":
        value += "=" * (-len(value) % 4 or 4)
    elif spoil == "standard":
        value = value.replace("-", "+").replace("_", "/") + ("+/" if "-" not in value else "")
    elif spoil == "junk":
        value = value[:4] + " " + value[4:]
    elif spoil == "length":
        value += "A" * ((1 - len(value)) % 4 or 4)  # length = 1 (mod 4)
    else:
        assert len(value) % 4, "the sample must end in a partial group, with unused bits"
        flipped = ALPHABET[ALPHABET.index(value[-1]) ^ 1]  # an unused low bit set
        value = value[:-1] + flipped
        same = base64.urlsafe_b64decode(jws[member] + "==")
        assert base64.urlsafe_b64decode(value + "==") == same
    assert len(value) % 4 == 1 or spoil != "length"
    problem = await server.problem({**jws, member: value})
    assert is_problem(problem, ProblemType.MALFORMED)
    assert server.nonces == {"nonce-1", "nonce-2"}


async def test_protected_header_must_be_a_json_object(server: FakeServer) -> None:
    """RFC 7515 5.2: the protected header decodes to a JSON object."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256")
    for header in (b"[]", b"not json", b'{"alg": "ES256", "alg": "none"}', b""):
        problem = await server.problem({**jws, "protected": b64(header)})
        assert is_problem(problem, ProblemType.MALFORMED)


# --- keys ------------------------------------------------------------------------------


def test_rfc7638_thumbprint_vector() -> None:
    """RFC 7638 3.1: the example RSA key's SHA-256 thumbprint."""
    key = parse_jwk(
        {
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
            "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08q"
            "NLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awa"
            "pJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29",
        }
    )
    assert key.thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert list(json.loads(key.jwk)) == ["e", "kty", "n"]  # optional members dropped


def test_okp_thumbprint_is_rfc7638_over_crv_kty_x() -> None:
    """RFC 8037 2 / RFC 7638 3.2: Ed25519 thumbprint input {"crv","kty","x"}, sorted."""
    private = PRIVATE_KEYS["EdDSA"]
    jwk = public_jwk(private)
    key = parse_jwk({**jwk, "use": "sig"})
    expected = '{"crv":"Ed25519","kty":"OKP","x":"' + jwk["x"] + '"}'
    assert key.jwk == expected
    assert key.thumbprint == b64(hashlib.sha256(expected.encode()).digest())
    assert isinstance(key.public_key, ed25519.Ed25519PublicKey)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
async def test_private_key_material_is_bad_public_key(server: FakeServer, alg: str) -> None:
    """RFC 8555 6.2: the "jwk" is a public key; private members mean badPublicKey."""
    private = PRIVATE_KEYS[alg]
    if alg == "EdDSA":
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        jwk = {**public_jwk(private), "d": b64(raw)}
    else:
        cls = jose.JWKRSA if alg == "RS256" else jose.JWKEC
        jwk = cls(key=private).to_json()
    assert "d" in jwk
    problem = await server.problem(make_jws(private, alg, jwk=jwk))
    assert is_problem(problem, ProblemType.BAD_PUBLIC_KEY)
    with pytest.raises(AcmeProblem):
        parse_jwk(jwk)


async def test_rsa_1024_is_bad_public_key(server: FakeServer) -> None:
    """RFC 8555 6.2 (badPublicKey): RSA keys below 2048 bits are refused."""
    private = rsa_key(1024)
    problem = await server.problem(make_jws(private, "RS256"))
    assert is_problem(problem, ProblemType.BAD_PUBLIC_KEY)
    assert "1024" in problem.detail


@pytest.mark.parametrize("e", [3, 5, (1 << 2047) + 1], ids=["3", "5", "2^2047+1"])
async def test_rsa_exponent_other_than_65537_is_bad_public_key(server: FakeServer,
                                                               e: int) -> None:
    """RFC 8555 6.2 (badPublicKey), CA/B Baseline Requirements 6.1.6: an RSA account key
    must have e = 65537, as CSR keys must. A huge e makes each signature check ~70
    times slower (a denial of service), so the key is refused before any verification:
    here the JWS's signature is not even valid."""
    n = RSA_KEY.public_key().public_numbers().n
    jwk = {"kty": "RSA", "n": b64(n.to_bytes(256, "big")),
           "e": b64(e.to_bytes((e.bit_length() + 7) // 8, "big"))}
    problem = bad_key(jwk)
    assert "public exponent must be 65537" in problem.detail, problem.detail
    jws = make_jws(None, "RS256", jwk=jwk, signature=b"\x01" * 256)
    problem = await server.problem(jws)
    assert is_problem(problem, ProblemType.BAD_PUBLIC_KEY), problem


@pytest.mark.parametrize("member", ["n", "e"])
async def test_rsa_member_with_a_leading_zero_octet_is_bad_public_key(
        server: FakeServer, member: str) -> None:
    """RFC 7518 6.3.1.1/6.3.1.2 and 2: "n" and "e" are Base64urlUInt, "the minimum
    number of octets"; a leading zero octet is another spelling of the same key, so it
    is badPublicKey rather than silently normalised, even under a valid signature."""
    numbers = RSA_KEY.public_key().public_numbers()
    jwk = public_jwk(RSA_KEY)
    value = numbers.n if member == "n" else numbers.e
    jwk[member] = b64(b"\x00" + value.to_bytes((value.bit_length() + 7) // 8, "big"))
    assert "leading zero" in bad_key(jwk).detail
    problem = await server.problem(make_jws(RSA_KEY, "RS256", jwk=jwk))
    assert is_problem(problem, ProblemType.BAD_PUBLIC_KEY), problem


def bad_key(jwk: Any) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as info:
        parse_jwk(jwk)
    assert info.value.type is ProblemType.BAD_PUBLIC_KEY
    return info.value


def test_unacceptable_jwks_are_bad_public_key() -> None:
    """RFC 7517/7518/8037: unsupported types, curves, sizes and broken members."""
    ec_jwk = public_jwk(PRIVATE_KEYS["ES256"])
    big_n = secrets.randbits(8200) | (1 << 8199) | 1
    bad_key({"kty": "RSA", "n": b64(big_n.to_bytes(1025, "big")), "e": "AQAB"})  # > 8192 bits
    bad_key({"kty": "oct", "k": "c2VjcmV0"})
    bad_key({"kty": "EC", "crv": "secp256k1", "x": ec_jwk["x"], "y": ec_jwk["y"]})
    bad_key({"kty": "OKP", "crv": "Ed448", "x": b64(b"\x00" * 57)})
    bad_key({"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x00" * 31)})
    bad_key({**ec_jwk, "y": ec_jwk["x"]})  # not on the curve
    bad_key({**ec_jwk, "x": ec_jwk["x"][:-2]})  # wrong length
    bad_key({**ec_jwk, "x": ec_jwk["x"] + "="})  # padded
    bad_key({"kty": "RSA", "e": "AQAB"})
    bad_key({"kty": "RSA", "n": "AQAB", "e": "AQAB"})  # e >= n
    bad_key({"crv": "P-256", "x": ec_jwk["x"], "y": ec_jwk["y"]})
    bad_key("not an object")


async def test_jwk_that_is_not_an_object_is_bad_public_key(server: FakeServer) -> None:
    """RFC 7517 4: a JWK is a JSON object."""
    jws = make_jws(None, "ES256", jwk={}, extra={"jwk": "x"}, signature=b"\x01" * 64)
    assert is_problem(await server.problem(jws), ProblemType.BAD_PUBLIC_KEY)


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
