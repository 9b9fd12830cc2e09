"""Weak public keys, refused for account keys and CSR keys alike (after Boulder's goodkey).

Sizes and curves are checked where each kind of key is read (pki/csr.py for CSR keys,
api/jws.py for account keys); this module refuses keys that pass those checks and are
still known to be breakable or too costly:

- RSA, a public exponent other than 65537 (:func:`check_rsa_exponent`, the one home of
  that rule): the Baseline Requirements 6.1.6 allow any odd e from 2^16+1, Boulder
  allows 65537 only, and a huge e (2^2047+1) makes every signature check about 70
  times slower, so account keys are checked before any signature by them is verified;

- on the blocklist: the SHA-256 of the key's DER SubjectPublicKeyInfo is in the set read
  from ``[policy] blocked_keys_file`` (config_values.key_blocklist reads the file);
- RSA, a small prime factor: the modulus is divisible by a prime below 752 (CA/B Baseline
  Requirements 6.1.6: "no factors smaller than 752"), found with one gcd;
- RSA, primes too close together: Fermat's method, which writes n = a^2 - b^2 starting at
  a = ceil(sqrt(n)), factors n within FERMAT_ROUNDS rounds (Boulder runs 110, the BRs
  6.1.1.3 ask for at least 100). It needs about (q - p)^2 / 8p rounds: far more than
  2^1000 for independently chosen 1024-bit primes, at most 110 when they differ by less
  than about 2^517.

The cost is bounded: one SHA-256 and a set lookup for every key, one gcd and at most
FERMAT_ROUNDS cheap rounds for RSA (docs/security.md, "Weak keys", has the figure).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from acme_ca.errors import PkiError
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


def spki_sha256(key: PublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo: what the blocklist file lists (in hex)."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def check_rsa_exponent(key: PublicKey) -> None:
    """PkiError unless an RSA key's public exponent is 65537; costs no arithmetic."""
    if isinstance(key, rsa.RSAPublicKey) and key.public_numbers().e != RSA_EXPONENT:
        raise PkiError(f"RSA public exponent must be {RSA_EXPONENT}")


def check_key_not_weak(key: PublicKey, blocked: Collection[bytes] = frozenset()) -> None:
    """Raise PkiError, saying why, if `key` is blocklisted, its RSA exponent is not
    65537 or its RSA modulus is weak."""
    check_rsa_exponent(key)
    if blocked and spki_sha256(key) in blocked:
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
