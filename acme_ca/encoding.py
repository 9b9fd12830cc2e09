"""The wire encodings every layer shares: base64url, random ids, the RFC 7638 JWK
thumbprint and RFC 3339 times.

One decoder for every base64url field (JWS parts, JWK members, a finalize ``csr``, a
revocation ``certificate``), and it is strict (RFC 7515 2 and Appendix C; RFC 8555 6.1
asks for it): the url-safe alphabet only, no padding, no whitespace, a length that is
not 1 mod 4, and canonical, i.e. the unused bits of the last character are zero, so
each byte string has exactly one spelling. A lenient decoder would accept several
spellings of one certificate or CSR.

One thumbprint for every key: account keys (api), CSR keys compared with the account key
and certificate keys at revocation (authority). It is SHA-256 over the canonical JSON
of the required public members (RFC 7638 3.2), and that JSON is also how an account key
is stored.

This module sits at the bottom of the layers (tests/test_layers.py): standard library
and cryptography key types only, no ACME problems. A malformed value raises
``ValueError`` whose text completes "<field> ..."; the caller names the field and
chooses the problem.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
# RFC 7518 6.2.1.1 names for the curves a JWK can carry.
_JWK_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def rfc3339(moment: datetime, *, round_up: bool = False) -> str:
    """``moment`` as an RFC 3339 date-time in UTC to the second, e.g.
    2026-12-07T03:20:00Z (RFC 8555 7.1: ``expires``, ``notBefore``...); a fraction of a
    second is dropped, or with ``round_up`` counted as a whole one (a time to wait
    until, as Retry-After is). A naive time is taken as UTC. (The audit log spells its
    hashed times with microseconds: ``domain.audit.time_text``.)"""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    if round_up and moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z")


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def random_id(size: int = 12) -> str:
    """``size`` random bytes as base64url, never starting with "-": an id is typed on
    command lines (`acme-ca accounts show ID`, certbot --eab-kid ID, lego --hmac KEY),
    which take a leading "-" for an option, so a 1 in 64 draw is drawn again."""
    while (text := secrets.token_urlsafe(size)).startswith("-"):
        pass
    return text


def b64url_decode(text: object) -> bytes:
    """Strict base64url (RFC 7515 2): the bytes of the one canonical spelling.

    ValueError, saying what is wrong, for anything else: not a string, a character
    outside the url-safe alphabet (padding and whitespace included), a length of 1
    mod 4, or unused bits that are not zero.
    """
    if not isinstance(text, str):
        raise ValueError("must be a base64url string")
    if not _ALPHABET.fullmatch(text):
        raise ValueError("is not base64url without padding")
    if len(text) % 4 == 1:
        raise ValueError("has a length no base64url text has")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))  # valid, per the checks
    if b64url_encode(data) != text:
        raise ValueError("is not canonical base64url (unused bits set)")
    return data


def _uint(value: int, size: int | None = None) -> str:
    """An unsigned integer, big-endian: `size` bytes, or as few as it needs (RFC 7518 6)."""
    return b64url_encode(value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big"))


def public_jwk(key: PublicKeyTypes) -> dict[str, str] | None:
    """The required public members of `key` as a JWK (RFC 7638 3.2: RSA n/e, EC crv/x/y
    of RFC 7518 6, OKP crv/x of RFC 8037 2), or None for a key JOSE cannot express."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"e": _uint(numbers.e), "kty": "RSA", "n": _uint(numbers.n)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = _JWK_CURVES.get(key.curve.name)
        if crv is None:
            return None
        size = (key.curve.key_size + 7) // 8
        point = key.public_numbers()
        return {"crv": crv, "kty": "EC", "x": _uint(point.x, size), "y": _uint(point.y, size)}
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes_raw()
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw)}
    return None


def canonical_jwk(members: dict[str, str]) -> str:
    """RFC 7638 3.3: members sorted, no whitespace, ASCII."""
    return json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def jwk_thumbprint(key: PublicKeyTypes) -> str | None:
    """The RFC 7638 SHA-256 thumbprint of `key`, base64url; None when `key` has no JWK
    form (a CSR's or certificate's key may be of any type)."""
    members = public_jwk(key)
    if members is None:
        return None
    return b64url_encode(hashlib.sha256(canonical_jwk(members).encode("ascii")).digest())
