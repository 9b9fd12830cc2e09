"""Weak RSA keys, built on purpose, for the tests of the weak-key checks (pki/goodkey.py).

    close_primes_key()  p a random 1024-bit prime, q the next prime: n = pq of 2048 bits,
                        which Fermat's method factors in its first round
    small_factor_key()  n = 3q, q a 2046-bit prime: a 2048-bit modulus divisible by 3

Both are real keys (they sign JWS and CSRs), made with RSAPrivateNumbers from primes
we choose, so the server's signature checks pass and only the weak-key check can refuse
them. Each is built once per test session.
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

E = 65537


def _probably_prime(n: int, rounds: int = 24) -> bool:
    """Miller-Rabin with random bases (enough for test keys)."""
    if n < 4:
        return n in (2, 3)
    if n % 2 == 0:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(2 + secrets.randbelow(n - 3), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def next_prime(n: int) -> int:
    """The smallest prime above n that also suits e = 65537 (gcd(e, q - 1) = 1)."""
    candidate = n + 1 + (n % 2)  # the next odd number
    while not (_probably_prime(candidate) and math.gcd(E, candidate - 1) == 1):
        candidate += 2
    return candidate


def key_from_primes(p: int, q: int) -> rsa.RSAPrivateKey:
    """An RSA private key with public exponent 65537 from two chosen primes."""
    d = pow(E, -1, math.lcm(p - 1, q - 1))
    public = rsa.RSAPublicNumbers(E, p * q)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public)
    return numbers.private_key()


def _a_prime(bits: int) -> int:
    """A random prime of `bits` bits, top two bits set (OpenSSL's, via a key of 2*bits)."""
    return rsa.generate_private_key(E, 2 * bits).private_numbers().p


@functools.cache
def close_primes_key() -> rsa.RSAPrivateKey:
    p = _a_prime(1024)
    return key_from_primes(p, next_prime(p))


@functools.cache
def small_factor_key() -> rsa.RSAPrivateKey:
    key = key_from_primes(3, _a_prime(2046))  # 3 * [1.5, 2) * 2**2045: exactly 2048 bits
    assert key.key_size == 2048
    return key


def spki_sha256_hex(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    """What a blocklist file line holds: SHA-256 of the DER SubjectPublicKeyInfo, in hex."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()
