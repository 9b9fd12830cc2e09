"""A tiny DER writer for the CSRs cryptography's builder refuses to write: a common name
that is not valid text, a dNSName that is not ASCII, a key algorithm nobody knows.

Only what the tests need: definite lengths, an ECDSA P-256 self-signature (or a fixed
bogus one for a key that cannot sign).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

COMMON_NAME = "2.5.4.3"
UTF8_STRING, PRINTABLE_STRING, TELETEX_STRING, BIT_STRING = 0x0C, 0x13, 0x14, 0x03
_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"


def tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    out = bytes([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, out)


def subject(value: bytes | str | None, tag: int = UTF8_STRING) -> bytes:
    """A Name with one common name (`value` as the string type `tag`), or empty."""
    if value is None:
        return seq()
    raw = value.encode() if isinstance(value, str) else value
    return seq(tlv(0x31, seq(oid(COMMON_NAME), tlv(tag, raw))))


def dns_sans(*names: str) -> bytes:
    """A subjectAltName extension of dNSNames written as UTF-8, unchecked."""
    general_names = seq(*(tlv(0x82, n.encode()) for n in names))
    return seq(oid("2.5.29.17"), tlv(0x04, general_names))


def csr(name: bytes, *extensions: bytes, spki: bytes | None = None) -> bytes:
    """A DER CSR for `name` with these extensions, self-signed with a fresh P-256 key;
    with `spki`, that key instead and a signature that cannot verify."""
    key = ec.generate_private_key(ec.SECP256R1())
    if spki is None:
        spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    attributes = b""
    if extensions:
        attributes = seq(oid("1.2.840.113549.1.9.14"), tlv(0x31, seq(*extensions)))
    info = seq(tlv(0x02, b"\x00"), name, spki, tlv(0xA0, attributes))
    signature = key.sign(info, ec.ECDSA(hashes.SHA256()))
    return seq(info, seq(oid(_ECDSA_WITH_SHA256)), tlv(0x03, b"\x00" + signature))


def unknown_key_spki() -> bytes:
    """A SubjectPublicKeyInfo of an algorithm cryptography does not know (GOST R 34.10-2001)."""
    return seq(seq(oid("1.2.643.2.2.19")), tlv(0x03, b"\x00" + b"\x04" * 65))
