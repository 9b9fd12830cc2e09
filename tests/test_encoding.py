"""The one base64url decoder, random ids, the one JWK thumbprint and the one RFC 3339
spelling of a time on the wire (acme_ca/encoding.py)."""

from __future__ import annotations

import base64
import secrets
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from josepy import jwk as jose_jwk

from acme_ca.encoding import (
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    public_jwk,
    random_id,
    rfc3339,
)

ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"

# RFC 7638 3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
    "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5"
    "v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08q"
    "NLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awa"
    "pJzKnqDKgw"
)
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff\xfe", b"abc", bytes(range(256))])
def test_round_trip(data: bytes) -> None:
    """RFC 7515 2: base64url, no padding; the decoder inverts the encoder."""
    text = b64url_encode(data)
    assert "=" not in text and b64url_decode(text) == data


@pytest.mark.parametrize(("text", "why"), [
    ("AA==", "padding (RFC 7515 2: no '=')"),
    ("+/8", "the standard alphabet's + and /"),
    ("AA A", "whitespace"),
    ("A", "length 1 mod 4"),
    ("AAAAA", "length 1 mod 4"),
    ("AB", "unused bits set: the canonical spelling of b'\\x00' is 'AA'"),
    ("AAB", "unused bits set: the canonical spelling of b'\\x00\\x00' is 'AAA'"),
    ("\uff21A", "a non-ASCII letter (fullwidth A)"),
    ("\u0663AA", "a non-ASCII digit (Arabic-Indic 3)"),
    (None, "not a string"),
    (b"AA", "bytes, not text"),
])
def test_everything_but_the_canonical_spelling_is_refused(text: object, why: str) -> None:
    """RFC 7515 2 and Appendix C (RFC 4648 5, 3.5: an encoder sets unused bits to zero):
    one spelling per byte string; the standard library's decoder accepts several."""
    with pytest.raises(ValueError, match=r"base64url|length"):
        b64url_decode(text)


def test_non_canonical_is_what_a_lenient_decoder_accepts() -> None:
    """The case the old lenient decoder of csr and certificate let through: the same
    bytes as the canonical text, differing only in unused bits."""
    canonical = b64url_encode(b"\x30\x82")
    spoiled = canonical[:-1] + ALPHABET[ALPHABET.index(canonical[-1]) | 1]
    assert base64.urlsafe_b64decode(spoiled + "=") == b"\x30\x82"
    with pytest.raises(ValueError, match="canonical"):
        b64url_decode(spoiled)


def test_rfc7638_example_thumbprint() -> None:
    """RFC 7638 3.1: the example RSA key's SHA-256 thumbprint."""
    n = int.from_bytes(b64url_decode(RFC7638_N), "big")
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    assert jwk_thumbprint(key) == RFC7638_THUMBPRINT
    assert public_jwk(key) == {"e": "AQAB", "kty": "RSA", "n": RFC7638_N}


@pytest.mark.parametrize("make", [
    lambda: rsa.generate_private_key(65537, 2048).public_key(),
    lambda: ec.generate_private_key(ec.SECP256R1()).public_key(),
    lambda: ec.generate_private_key(ec.SECP384R1()).public_key(),
    lambda: ec.generate_private_key(ec.SECP521R1()).public_key(),
], ids=["rsa2048", "p256", "p384", "p521"])
def test_thumbprint_and_jwk_match_josepy(make: object) -> None:
    """RFC 7638 3.2: the thumbprint accounts were stored under (computed by josepy
    before) is the one computed now, and so is the stored JWK text."""
    key = make()  # type: ignore[operator]
    jose = (jose_jwk.JWKRSA if isinstance(key, rsa.RSAPublicKey) else jose_jwk.JWKEC)(key=key)
    assert jwk_thumbprint(key) == b64url_encode(jose.thumbprint())
    assert public_jwk(key) == jose.to_json()


def test_ed25519_thumbprint_members() -> None:
    """RFC 8037 2 and RFC 7638 3.2: an OKP key's members are crv, kty, x."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    assert set(public_jwk(key) or {}) == {"crv", "kty", "x"}
    assert jwk_thumbprint(key) is not None


def test_key_without_a_jwk_form_has_no_thumbprint() -> None:
    """RFC 7518 6.2.1.1 names P-256, P-384 and P-521 only."""
    key = ec.generate_private_key(ec.SECP256K1()).public_key()
    assert public_jwk(key) is None and jwk_thumbprint(key) is None


@pytest.mark.parametrize("length", [2, 3, 6, 7])
def test_every_last_character_is_refused_unless_canonical(length: int) -> None:
    """RFC 4648 3.5 (RFC 7515 Appendix C): of the 64 characters that can end a text of
    a length 2 or 3 mod 4, exactly those an encoder writes decode: 4 after 2 characters
    (the value's low 4 bits are unused), 16 after 3 (2 bits); each is its bytes' one
    spelling."""
    accepted = []
    for last in ALPHABET:
        text = "A" * (length - 1) + last
        try:
            data = b64url_decode(text)
        except ValueError:
            continue
        assert b64url_encode(data) == text
        accepted.append(last)
    assert len(accepted) == (4 if length % 4 == 2 else 16)


@pytest.mark.parametrize(("moment", "round_up", "text"), [
    (datetime(2026, 12, 7, 3, 20, tzinfo=UTC), False, "2026-12-07T03:20:00Z"),
    (datetime(2026, 12, 7, 3, 20, 5, 999_999, tzinfo=UTC), False, "2026-12-07T03:20:05Z"),
    (datetime(2026, 12, 7, 3, 20, 5, 1, tzinfo=UTC), True, "2026-12-07T03:20:06Z"),
    (datetime(2026, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC), True, "2027-01-01T00:00:00Z"),
    (datetime(2026, 12, 7, 3, 20, 5, tzinfo=UTC), True, "2026-12-07T03:20:05Z"),
    (datetime(2026, 12, 7, 4, 20, tzinfo=timezone(timedelta(hours=1))), False,
     "2026-12-07T03:20:00Z"),
    (datetime(2026, 12, 7, 3, 20), False, "2026-12-07T03:20:00Z"),  # naive: taken as UTC
    (datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), False, "0999-01-02T03:04:05Z"),
    (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), False, "9999-12-31T23:59:59Z"),
])
def test_rfc3339_is_utc_to_the_second(moment: datetime, round_up: bool, text: str) -> None:
    """RFC 3339 5.6 date-time with "Z" (RFC 8555 7.1.3 ``expires``, 7.1.6 ...): a time in
    another offset is said in UTC; a fraction is dropped, or rounded up for a time to
    wait until (a rate limit's retry time)."""
    assert rfc3339(moment, round_up=round_up) == text


def test_random_ids_never_look_like_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """An account's id is typed on a command line (`acme-ca accounts deactivate ID`),
    which takes a leading "-" for an option: such a draw is drawn again (of 2000 draws
    about 31 would start with one without the redraw)."""
    ids = [random_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == 2000 and {len(i) for i in ids} == {16}  # 12 bytes, base64url
    draws = iter(["-first", "-second", "third"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda size: next(draws))
    assert random_id() == "third"
