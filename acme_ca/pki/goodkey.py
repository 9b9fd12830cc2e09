"""Weak public keys, refused for account keys and CSR keys alike (after Boulder's goodkey).

Sizes and curves are checked where each kind of key is read (pki/csr.py for CSR keys,
api/jws.py for account keys); this module refuses keys that pass those checks and are
still known to be breakable or too costly:

- RSA, a public exponent other than 65537 (:func:`check_rsa_exponent`, the one home of
  that rule): the Baseline Requirements 6.1.6 allow any odd e from 2^16+1, Boulder
  allows 65537 only, and a huge e (2^2047+1) makes every signature check about 70
  times slower, so account keys are checked before any signature by them is verified;

- on the blocklist: a SHA-256 of the key's DER SubjectPublicKeyInfo is in the set read
  from ``[policy] blocked_keys_file`` (config_values.key_blocklist reads the file). One
  key has several SPKI encodings, and a line made with ``sha256sum`` from a key file
  holds the hash of whichever the file had, so every key is looked up under each of
  :func:`key_hashes`: the canonical form (:func:`key_hash`, what ``acme-ca keys hash``
  prints: rsaEncryption of (n, e); an EC point uncompressed, named curve), and also, for
  EC, the compressed point (RFC 5480 2.2), for RSA, the RSASSA-PSS OID without
  parameters (RFC 4055, what ``openssl genpkey -algorithm RSA-PSS`` writes). A PSS key
  with parameters has no predictable form: its line must come from ``keys hash``;
- RSA, a small prime factor: the modulus is divisible by a prime below 752 (CA/B Baseline
  Requirements 6.1.6: "no factors smaller than 752"), found with one gcd;
- RSA, primes too close together: Fermat's method, which writes n = a^2 - b^2 starting at
  a = ceil(sqrt(n)), factors n within FERMAT_ROUNDS rounds (Boulder runs 110, the BRs
  6.1.1.3 ask for at least 100). It needs about (q - p)^2 / 8p rounds: far more than
  2^1000 for independently chosen 1024-bit primes, at most 110 when they differ by less
  than about 2^517.

The cost is bounded: two SHA-256 and set lookups for every key, one gcd and at most
FERMAT_ROUNDS cheap rounds for RSA (docs/security.md, "Weak keys", has the figure).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acme_ca.errors import PkiError
from acme_ca.pki.der import tlv
from acme_ca.pki.keys import PublicKey

RSA_EXPONENT = 65537
FERMAT_ROUNDS = 110
SMALL_PRIME_BOUND = 752
SMALL_PRIMES = tuple(
    n for n in range(2, SMALL_PRIME_BOUND) if all(n % d for d in range(2, math.isqrt(n) + 1))
)
_SMALL_PRIMES_PRODUCT = math.prod(SMALL_PRIMES)
# The squares modulo 64: b2 % 64 outside this set means b2 is no square (52 of 64 values).
_SQUARES_MOD_64 = frozenset(i * i % 64 for i in range(64))


# RFC 4055 2.1 / 3.1: id-RSASSA-PSS, 1.2.840.113549.1.1.10, as a DER OBJECT IDENTIFIER.
_RSASSA_PSS_OID = bytes.fromhex("06092a864886f70d01010a")


def _spki(algorithm: bytes, public_key: bytes) -> bytes:
    """SubjectPublicKeyInfo (RFC 5280 4.1): SEQUENCE { algorithm, BIT STRING key }."""
    return tlv(0x30, algorithm + tlv(0x03, b"\x00" + public_key))


def _spki_der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_hash(key: PublicKey) -> bytes:
    """SHA-256 of the canonical DER SubjectPublicKeyInfo: rsaEncryption for any RSA key
    (cryptography writes RSA-PSS keys so too), an EC point uncompressed on its named
    curve. A blocklist line is this in hex (``acme-ca keys hash``)."""
    return hashlib.sha256(_spki_der(key)).digest()


def key_hashes(key: PublicKey) -> tuple[bytes, ...]:
    """Every SHA-256 under which `key` is looked up in the blocklist: :func:`key_hash`
    first, then the other encodings a key file may hold (the module docstring)."""
    canonical = _spki_der(key)
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = canonical[2:4 + canonical[3]]  # AlgorithmIdentifier: short (< 128)
        point = key.public_bytes(serialization.Encoding.X962,
                                 serialization.PublicFormat.CompressedPoint)
        other = _spki(algorithm, point)
    elif isinstance(key, rsa.RSAPublicKey):
        pkcs1 = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        other = _spki(tlv(0x30, _RSASSA_PSS_OID), pkcs1)
    else:
        return (hashlib.sha256(canonical).digest(),)
    return hashlib.sha256(canonical).digest(), hashlib.sha256(other).digest()


def check_rsa_exponent(key: PublicKey) -> None:
    """PkiError unless an RSA key's public exponent is 65537; costs no arithmetic."""
    if isinstance(key, rsa.RSAPublicKey) and key.public_numbers().e != RSA_EXPONENT:
        raise PkiError(f"RSA public exponent must be {RSA_EXPONENT}")


def check_key_not_weak(key: PublicKey, blocked: Collection[bytes] = frozenset()) -> None:
    """Raise PkiError, saying why, if `key` is blocklisted, its RSA exponent is not
    65537 or its RSA modulus is weak."""
    check_rsa_exponent(key)
    if blocked and any(digest in blocked for digest in key_hashes(key)):
        raise PkiError(
            "the public key is on the blocklist of known-compromised keys "
            "([policy] blocked_keys_file)"
        )
    if isinstance(key, rsa.RSAPublicKey):
        _check_modulus(key.public_numbers().n)


def _check_modulus(n: int) -> None:
    common = math.gcd(n, _SMALL_PRIMES_PRODUCT)
    if common != 1:
        factor = next(p for p in SMALL_PRIMES if common % p == 0)
        raise PkiError(f"the RSA modulus is divisible by the small prime {factor}")
    rounds = _fermat_rounds(n)
    if rounds is not None:
        raise PkiError(
            f"the RSA modulus is factored by Fermat's method in {rounds} "
            f"round{'s' if rounds > 1 else ''}: its two primes are too close together"
        )


def _fermat_rounds(n: int) -> int | None:
    """The round (1-based) in which Fermat's method factors n, or None within the bound.

    Looks for a with a^2 - n = b^2 a perfect square, a = ceil(sqrt(n)), ceil + 1, ...;
    b2 is updated by addition ((a+1)^2 - a^2 = 2a + 1), and a square root is taken only
    for the 12 in 64 values of b2 that can be squares.
    """
    a = math.isqrt(n)
    if a * a < n:
        a += 1
    b2 = a * a - n
    for round_ in range(1, FERMAT_ROUNDS + 1):
        if b2 & 63 in _SQUARES_MOD_64:
            b = math.isqrt(b2)
            if b * b == b2:
                return round_
        b2 += 2 * a + 1
        a += 1
    return None
