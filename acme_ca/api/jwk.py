"""Account keys from JWKs (RFC 7517, RFC 7518 6, RFC 8037): what an ACME account may sign
with, as an ``AccountKey`` (the key, its canonical JWK and its RFC 7638 thumbprint).

RSA 2048-8192 bits with e = 65537, EC P-256/384/521 and Ed25519; anything else, and a
JWK with private members, is badPublicKey. :mod:`acme_ca.api.jws` calls it for every
key a JWS carries or a stored account holds.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from josepy import errors as jose_errors
from josepy import jwk as jose_jwk

from acme_ca.authority.accounts import AccountKey, check_signing_key
from acme_ca.domain.problems import AcmeProblem, ProblemType, b64url_field
from acme_ca.encoding import canonical_jwk, jwk_thumbprint, public_jwk

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192

CRV_BY_CURVE_NAME = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_CURVES = frozenset(CRV_BY_CURVE_NAME.values())
# RFC 7518 6.3.2, 6.2.2, 6.4 and RFC 8037 2: members that only a private key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})



def _bad_key(detail: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.BAD_PUBLIC_KEY, detail)


@functools.lru_cache(maxsize=4096)
def stored_account_key(jwk: str) -> AccountKey:
    """The AccountKey of a stored account (its canonical JWK JSON), parsed once: a request
    signed by a known account then costs no key parsing."""
    return parse_jwk(json.loads(jwk))


def parse_jwk(obj: Mapping[str, Any]) -> AccountKey:
    """An account key from a public JWK (RFC 7517): RSA 2048-8192 bits with e = 65537,
    EC P-256/384/521 or OKP Ed25519. Private members, other key types and broken keys:
    badPublicKey. Stored accounts' keys pass here too, so an old account with another
    RSA exponent is refused on every request."""
    if not isinstance(obj, Mapping):
        raise _bad_key("the JWK must be a JSON object")
    private = sorted(_PRIVATE_MEMBERS.intersection(obj))
    if private:
        raise _bad_key(f"the JWK contains private key members: {', '.join(private)}")
    kty = obj.get("kty")
    if kty == "OKP":
        return _parse_okp(obj)
    if kty not in ("RSA", "EC"):
        raise _bad_key(f"unsupported JWK key type {kty!r}; use RSA, EC or OKP (Ed25519)")
    names = ("n", "e") if kty == "RSA" else ("x", "y")
    crv = obj.get("crv")
    if kty == "EC" and not (isinstance(crv, str) and crv in _CURVES):
        raise _bad_key(f"unsupported EC curve {crv!r}; use P-256, P-384 or P-521")
    for name in names:
        try:
            raw = b64url_field(obj.get(name), f"JWK member {name!r}")
        except AcmeProblem as problem:
            raise _bad_key(problem.detail) from None
        # RFC 7518 6.3.1 and 2: RSA's n and e are Base64urlUInt, the fewest octets
        if kty == "RSA" and len(raw) > 1 and raw[0] == 0:
            raise _bad_key(f"JWK member {name!r} has a leading zero octet: RFC 7518 "
                           "6.3.1 wants the minimum number of octets")
    members = {k: obj[k] for k in ("kty", "crv", *names) if k in obj}
    try:
        parsed = jose_jwk.JWK.from_json(members)
        if not isinstance(parsed, jose_jwk.JWKRSA | jose_jwk.JWKEC):  # pragma: no cover
            raise TypeError(f"josepy parsed a {type(parsed).__name__}")
        key = parsed.key.public_numbers().public_key()
    except (jose_errors.Error, ValueError, TypeError, KeyError) as exc:
        raise _bad_key(f"invalid {kty} public key: {exc or type(exc).__name__}") from None
    if isinstance(key, rsa.RSAPublicKey) and not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
        raise _bad_key(
            f"RSA key of {key.key_size} bits; {RSA_MIN_BITS} to {RSA_MAX_BITS} bits accepted"
        )
    check_signing_key(key)  # e = 65537, before any signature by it is verified
    return _account_key(key)


def _parse_okp(obj: Mapping[str, Any]) -> AccountKey:
    """RFC 8037: Ed25519 only (Ed448 and the X curves do not sign JWS here)."""
    if obj.get("crv") != "Ed25519":
        raise _bad_key(f"unsupported OKP curve {obj.get('crv')!r}; use Ed25519")
    try:
        raw = b64url_field(obj.get("x"), "JWK member 'x'")
        key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except AcmeProblem as problem:
        raise _bad_key(problem.detail) from None
    except ValueError:
        raise _bad_key("invalid Ed25519 public key: 'x' must be 32 bytes") from None
    return _account_key(key)


def _account_key(key: PublicKey) -> AccountKey:
    """The key with its canonical JWK (RFC 7638 3.2, as stored) and thumbprint."""
    members = public_jwk(key)
    thumbprint = jwk_thumbprint(key)
    if members is None or thumbprint is None:  # pragma: no cover - parse_jwk allows none
        raise _bad_key(f"{describe(key)} keys cannot be account keys")
    return AccountKey(key, canonical_jwk(members), thumbprint)


def describe(key: PublicKey) -> str:
    """"RSA 2048", "EC P-256", "Ed25519": a key as messages name it."""
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {CRV_BY_CURVE_NAME.get(key.curve.name, key.curve.name)}"
    return "Ed25519"
