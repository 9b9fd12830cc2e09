"""The little DER (X.690) the PKI writes and walks by hand: one TLV made, and the
lengths of a TLV read back. Definite lengths only (X.690 10.1: DER has no other)."""

from __future__ import annotations


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV (X.690 8.1): the length in short form below 128, else long form."""
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def header_length(der: bytes, at: int) -> int:
    """The octets of the tag and length of the TLV at ``at``: where its content starts."""
    first = der[at + 1]
    return 2 if first < 0x80 else 2 + (first & 0x7F)


def tlv_length(der: bytes, at: int) -> int:
    """The octets of the whole TLV at ``at``: header and content."""
    first = der[at + 1]
    if first < 0x80:
        return 2 + first
    size = first & 0x7F
    return 2 + size + int.from_bytes(der[at + 2:at + 2 + size], "big")
