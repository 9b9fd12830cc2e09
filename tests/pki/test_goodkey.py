"""Weak keys (Boulder's goodkey): Fermat-factorable moduli, small prime factors, and the
blocklist of known-compromised keys, for account keys and CSR keys alike."""

from __future__ import annotations

import hashlib
import math
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.errors import PkiError
from acme_ca.pki.csr import load_csr, read_csr
from acme_ca.pki.goodkey import check_key_not_weak, key_hash
from tests.weak_keys import E, close_primes_key, next_prime, small_factor_key, spki_sha256_hex


def fermat_rounds_needed(p: int, q: int) -> int:
    """The round of Fermat's method (a from ceil(sqrt(n)) upwards) that finds p and q."""
    n = p * q
    start = math.isqrt(n) + (math.isqrt(n) ** 2 != n)
    return (p + q) // 2 - start + 1


def public(n: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(E, n).public_key()


def test_primes_next_to_each_other_are_refused() -> None:
    """CA/B Baseline Requirements 6.1.1.3: a key with a known method to compute its private
    key is refused; Fermat's method finds p and q when they are close."""
    with pytest.raises(PkiError, match="Fermat's method in 1 round:"):
        check_key_not_weak(close_primes_key().public_key())


def modulus_needing(rounds: int) -> int:
    """A real RSA modulus p*q (p the 1024-bit prime of close_primes_key) that Fermat's
    method factors in exactly `rounds` rounds.

    With m = (p+q)/2 and d = q - p, round r finds the factors when
    m - sqrt(m^2 - d^2/4), about d^2/8m, lies in [r-1, r): aim for r - 1/2, then the
    next prime moves d by far less than the width of that interval (about 2^509).
    """
    p = close_primes_key().private_numbers().p
    q = next_prime(p + math.isqrt(8 * p * (2 * rounds - 1) // 2))
    assert fermat_rounds_needed(p, q) == rounds
    return p * q


@pytest.mark.parametrize(("rounds", "refused"), [(55, True), (110, True), (111, False)])
def test_fermat_is_bounded_to_exactly_its_rounds(rounds: int, refused: bool) -> None:
    """CA/B Baseline Requirements 6.1.1.3 (and Boulder's goodkey): Fermat's method runs
    110 rounds (FERMAT_ROUNDS, Boulder's figure). A modulus that needs exactly 110 is
    refused, one that needs 111 passes: moving the bound by one, either way, fails."""
    n = modulus_needing(rounds)
    if refused:
        with pytest.raises(PkiError, match=f"in {rounds} rounds:"):
            check_key_not_weak(public(n))
    else:
        check_key_not_weak(public(n))


@pytest.mark.parametrize(("factor", "refused"), [(3, True), (751, True), (757, False)])
def test_a_small_prime_factor_is_refused(factor: int, refused: bool) -> None:
    """CA/B Baseline Requirements 6.1.6: the modulus has no factor smaller than 752."""
    q = small_factor_key().private_numbers().q
    n = factor * q
    if refused:
        with pytest.raises(PkiError, match=f"divisible by the small prime {factor}"):
            check_key_not_weak(public(n))
    else:
        check_key_not_weak(public(n))


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: rsa.generate_private_key(E, 2048),
], ids=["ec", "rsa"])
def test_a_blocklisted_key_is_refused(make: object, tmp_path: Path) -> None:
    """A key whose SubjectPublicKeyInfo SHA-256 is on the blocklist is refused; for a key
    in the usual encoding, the hash `openssl pkey -pubin -outform DER | sha256sum`
    prints is key_hash, the line `acme-ca keys hash` prints."""
    key = make()  # type: ignore[operator]
    pem = tmp_path / "key.pub"
    pem.write_bytes(key.public_key().public_bytes(
        Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pem, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    assert hashlib.sha256(der).hexdigest() == spki_sha256_hex(key)
    assert key_hash(key.public_key()).hex() == spki_sha256_hex(key)
    blocked = frozenset({key_hash(key.public_key())})
    with pytest.raises(PkiError, match="blocklist of known-compromised keys"):
        check_key_not_weak(key.public_key(), blocked)
    check_key_not_weak(ec.generate_private_key(ec.SECP256R1()).public_key(), blocked)


def openssl(*args: object) -> bytes:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True,
                          check=True).stdout


# Keys as openssl writes them, in SubjectPublicKeyInfo encodings that cryptography does
# not write back: an EC point in compressed form, an RSA key under the RSASSA-PSS OID.
OPENSSL_KEYS = {
    "ec compressed point": [("ecparam", "-genkey", "-name", "prime256v1", "-noout",
                             "-out", "plain.pem"),
                            ("ec", "-in", "plain.pem", "-conv_form", "compressed",
                             "-out", "key.pem")],
    "rsa-pss": [("genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", "key.pem")],
}


def openssl_key(kind: str, directory: Path) -> Path:
    for command in OPENSSL_KEYS[kind]:
        openssl(*(directory / a if a.endswith(".pem") else a for a in command))
    return directory / "key.pem"


@pytest.mark.parametrize("kind", OPENSSL_KEYS)
def test_a_sha256sum_line_of_a_key_file_in_another_encoding_matches(kind: str,
                                                                    tmp_path: Path) -> None:
    """The blocklist must not fail open when its line was made, with `openssl pkey
    -pubout -outform DER | sha256sum`, from a key file whose SubjectPublicKeyInfo
    (RFC 5280 4.1.2.7) is not the one cryptography re-encodes: the compressed EC point
    (RFC 5480 2.2) and the RSASSA-PSS OID without parameters (RFC 4055 1.2) are
    hashed too. The same key, in whatever form it arrives (a CSR, a JWK), is refused."""
    path = openssl_key(kind, tmp_path)
    der = openssl("pkey", "-in", path, "-pubout", "-outform", "DER")
    blocked = frozenset({hashlib.sha256(der).digest()})
    key = serialization.load_pem_private_key(path.read_bytes(), None).public_key()
    assert key.public_bytes(Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != der
    with pytest.raises(PkiError, match="blocklist of known-compromised keys"):
        check_key_not_weak(key, blocked)  # type: ignore[arg-type]
    numbers = key.public_numbers()  # type: ignore[union-attr]
    with pytest.raises(PkiError, match="blocklist of known-compromised keys"):
        check_key_not_weak(numbers.public_key(), blocked)  # as from a JWK: (n, e) or (x, y)


@pytest.mark.parametrize("e", [3, 65539, (1 << 2047) + 1], ids=["3", "65539", "2^2047+1"])
def test_an_rsa_exponent_other_than_65537_is_refused(e: int) -> None:
    """CA/B Baseline Requirements 6.1.6 (an odd e, 2^16+1 to 2^256-1: we take 65537 only,
    as Boulder's goodkey does), for account and CSR keys alike; a huge e is also a
    denial of service on every signature check."""
    n = rsa.generate_private_key(E, 2048).public_key().public_numbers().n
    with pytest.raises(PkiError, match="RSA public exponent must be 65537"):
        check_key_not_weak(rsa.RSAPublicNumbers(e, n).public_key())


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: rsa.generate_private_key(E, 2048),
    ed25519.Ed25519PrivateKey.generate,
], ids=["ec", "rsa", "ed25519"])
def test_ordinary_keys_pass(make: object) -> None:
    check_key_not_weak(make().public_key())  # type: ignore[operator]


@pytest.mark.parametrize(("key", "fragment"), [
    (close_primes_key, "Fermat"),
    (small_factor_key, "small prime 3"),
], ids=["close primes", "small factor"])
def test_a_csr_with_a_weak_key_is_refused(make_csr: object, key: object, fragment: str) -> None:
    csr = make_csr("www.bluerobin.local", key=key())  # type: ignore[operator]
    with pytest.raises(PkiError, match=fragment):
        read_csr(load_csr(csr.public_bytes(Encoding.DER)))


def test_a_csr_with_a_blocklisted_key_is_refused(make_csr: object) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr("www.bluerobin.local", key=key)  # type: ignore[operator]
    with pytest.raises(PkiError, match="blocklist"):
        read_csr(csr, blocked_keys=frozenset({key_hash(key.public_key())}))
