"""The JWS pipeline (acme_ca/api/jws.py, acme_ca/api/jwk.py): the format of what is
signed. The signature (RFC 7515 5.2, RFC 7518 3.4); the envelope, the flattened JSON
serialization (RFC 8555 6.2, RFC 7515 7.2): media type, size, members, strict
base64url; and the account key in a "jwk" (RFC 7517, RFC 7518 6, RFC 8037;
badPublicKey, RFC 8555 6.2) with its RFC 7638 thumbprint.

Signed as in test_jws.py, then broken one rule at a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.api.jwk import parse_jwk
from acme_ca.api.jws import ALGORITHMS
from acme_ca.domain.problems import AcmeProblem, ProblemType
from tests.api.jws_helpers import (
    KID,
    PRIVATE_KEYS,
    RSA_KEY,
    FakeServer,
    b64,
    encode,
    is_problem,
    make_jws,
    public_jwk,
    rsa_key,
)

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


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

