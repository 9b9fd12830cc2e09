"""tls-alpn-01 validation (RFC 8737, RFC 8738 section 6) against real TLS servers.

Each server is an asyncio server on 127.0.0.1 that counts the TCP connections it
accepts, then (unless told to stay silent) starts TLS with a context offering the
given ALPN protocols and presenting a challenge certificate (the fixture tls_server
in conftest.py; certificates from tlsalpn01_helpers.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import ProblemType
from acme_ca.validation.network import AddressPolicy
from acme_ca.validation.resolver import Resolver
from acme_ca.validation.tlsalpn01 import TlsAlpn01Validator, sni_for
from tests.validation.http01_helpers import free_port
from tests.validation.tlsalpn01_helpers import (
    ACME_IDENTIFIER,
    DIGEST,
    IDENT,
    IP_IDENT,
    KEY,
    NAME,
    Start,
    challenge_cert,
    check,
    validator,
)


def refusal(port: int, reason: str, ident: Identifier = IDENT) -> str:
    return (
        f"the certificate from {ident.value}:{port} is not a valid "
        f"tls-alpn-01 response: {reason}"
    )


async def test_correct_certificate_is_valid(tls_server: Start) -> None:
    """RFC 8737 section 3: SNI = the name, ALPN acme-tls/1, one dNSName, critical digest."""
    server = await tls_server()
    policy = AddressPolicy([ipaddress.ip_network("127.0.0.0/8")])
    result = await check(validator(server.port, policy))
    assert result.valid, result.problem
    assert server.snis == [NAME]
    assert result.records == (
        {
            "hostname": NAME,
            "port": server.port,
            "sni": NAME,
            "addresses_resolved": ["127.0.0.1"],
            "addresses_refused": [],
            "addresses_tried": ["127.0.0.1"],
            "address_used": "127.0.0.1",
            "alpn": "acme-tls/1",
            "tls_version": "TLSv1.3",
            "failure": None,
        },
    )


async def test_ip_identifier_uses_reverse_name_as_sni(tls_server: Start) -> None:
    """RFC 8738 section 6: SNI is the in-addr.arpa name; the SAN is one iPAddress."""
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = await tls_server(challenge_cert(sans))
    result = await check(validator(server.port), IP_IDENT)
    assert result.valid, result.problem
    assert server.snis == ["1.0.0.127.in-addr.arpa"]
    assert result.records[0]["sni"] == "1.0.0.127.in-addr.arpa"


async def test_ip_identifier_with_dns_name_san_is_unauthorized(tls_server: Start) -> None:
    """RFC 8738 section 6: the SAN must be an iPAddress, not the address as a dNSName."""
    server = await tls_server(challenge_cert([x509.DNSName("127.0.0.1")]))
    result = await check(validator(server.port), IP_IDENT)
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    reason = "its subjectAltName entry is not iPAddress 127.0.0.1"
    assert result.problem.detail == refusal(server.port, reason, IP_IDENT)


@pytest.mark.parametrize(
    ("ident", "sni"),
    [
        (IDENT, NAME),
        (IP_IDENT, "1.0.0.127.in-addr.arpa"),
        (Identifier("ip", "2001:db8::1"), "1.0.0.0." + "0." * 20 + "8.b.d.0.1.0.0.2.ip6.arpa"),
    ],
)
def test_sni_for(ident: Identifier, sni: str) -> None:
    """RFC 8738 section 6: reverse names in nibble form for IPv6."""
    assert sni_for(ident) == sni


@pytest.mark.parametrize(
    ("ident", "problem"),
    [
        (Identifier("dns", "*.bluerobin.local"), ProblemType.MALFORMED),
        (Identifier("ip", "not-an-ip"), ProblemType.MALFORMED),
        (Identifier("email", "a@b.c"), ProblemType.UNSUPPORTED_IDENTIFIER),
    ],
)
async def test_identifiers_tls_alpn_cannot_validate(
    ident: Identifier, problem: ProblemType
) -> None:
    """RFC 8737 section 3 validates one name (no wildcard); RFC 8738 adds IP addresses only."""
    result = await check(validator(free_port()), ident)
    assert result.problem is not None
    assert result.problem.type is problem
    assert result.records == ()


async def test_extension_not_critical_is_unauthorized(tls_server: Start) -> None:
    """RFC 8737 section 3: the acmeIdentifier extension MUST be critical."""
    server = await tls_server(challenge_cert(critical=False))
    result = await check(validator(server.port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    reason = "the acmeIdentifier extension is not marked critical"
    assert result.problem.detail == refusal(server.port, reason)
    assert result.records[0]["failure"] == result.problem.detail


async def test_extension_missing_is_unauthorized(tls_server: Start) -> None:
    """RFC 8737 section 3: the certificate MUST contain the acmeIdentifier extension."""
    server = await tls_server(challenge_cert(acme_value=None))
    result = await check(validator(server.port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    reason = "it has no acmeIdentifier extension (1.3.6.1.5.5.7.1.31)"
    assert result.problem.detail == refusal(server.port, reason)


async def test_wrong_digest_is_unauthorized(tls_server: Start) -> None:
    """RFC 8737 section 3: the extension holds SHA-256 of *this* key authorization."""
    other = hashlib.sha256(b"another.key-authorization").digest()
    server = await tls_server(challenge_cert(acme_value=b"\x04\x20" + other))
    result = await check(validator(server.port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    reason = (
        "the acmeIdentifier extension does not hold the SHA-256 digest of the key "
        f"authorization ({DIGEST.hex()})"
    )
    assert result.problem.detail == refusal(server.port, reason)


@pytest.mark.parametrize(
    "value",
    [DIGEST, b"\x04\x1f" + DIGEST[:31], b"\x0c\x20" + DIGEST, b"\x04\x21" + DIGEST + b"\x00"],
    ids=["bare-digest", "31-bytes", "utf8string", "33-bytes"],
)
async def test_extension_not_an_octet_string_of_32_bytes(tls_server: Start, value: bytes) -> None:
    """RFC 8737 section 3: extnValue is the DER encoding of Authorization ::= OCTET STRING (32)."""
    server = await tls_server(challenge_cert(acme_value=value))
    result = await check(validator(server.port))
    assert result.problem is not None
    reason = "the acmeIdentifier extension is not a DER OCTET STRING of 32 bytes"
    assert result.problem.detail == refusal(server.port, reason)


async def test_two_sans_are_unauthorized(tls_server: Start) -> None:
    """RFC 8737 section 3: the dNSName being validated "and no other entries"."""
    sans: list[x509.GeneralName] = [x509.DNSName(NAME), x509.DNSName("other.bluerobin.local")]
    server = await tls_server(challenge_cert(sans))
    result = await check(validator(server.port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    reason = "its subjectAltName has 2 entries, not exactly one"
    assert result.problem.detail == refusal(server.port, reason)


async def test_san_for_another_name_is_unauthorized(tls_server: Start) -> None:
    """RFC 8737 section 3: the one dNSName must be the name being validated."""
    server = await tls_server(challenge_cert([x509.DNSName("other.bluerobin.local")]))
    result = await check(validator(server.port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    reason = f"its subjectAltName entry is not dNSName {NAME}"
    assert result.problem.detail == refusal(server.port, reason)


def raw_dns_san(raw: bytes) -> x509.Certificate:
    """A challenge certificate whose one dNSName holds ``raw`` (cryptography's builder
    refuses non-ASCII, so the extension is encoded by hand)."""
    certificate = challenge_cert([])
    general_name = b"\x82" + bytes([len(raw)]) + raw  # [2] IA5String dNSName
    san = x509.UnrecognizedExtension(
        x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        b"\x30" + bytes([len(general_name)]) + general_name,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(certificate.subject)
        .issuer_name(certificate.issuer)
        .public_key(KEY.public_key())
        .serial_number(certificate.serial_number)
        .not_valid_before(certificate.not_valid_before_utc)
        .not_valid_after(certificate.not_valid_after_utc)
        .add_extension(san, critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + DIGEST), True)
    )
    return builder.sign(KEY, hashes.SHA256())


@pytest.mark.parametrize(
    ("raw", "ident"),
    [
        ("é.bluerobin.local".encode(), IDENT),
        # KELVIN SIGN: lowercases to "k", so only an ASCII check keeps it from matching
        ("\u212a.bluerobin.local".encode(), Identifier("dns", "k.bluerobin.local")),
    ],
    ids=["utf8", "kelvin-sign"],
)
async def test_a_non_ascii_dns_name_is_refused_plainly(
    tls_server: Start, raw: bytes, ident: Identifier
) -> None:
    """RFC 5280 4.2.1.6: a dNSName is an IA5String (ASCII). A peer certificate holding
    UTF-8 bytes there is not the identifier: unauthorized with a plain reason, never an
    exception out of validate() (which would become serverInternal)."""
    server = await tls_server(raw_dns_san(raw))
    result = await check(
        TlsAlpn01Validator(Resolver(hosts={ident.value: "127.0.0.1"}, resolvers=[]),
                           port=server.port),
        ident,
    )
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    reason = f"its subjectAltName entry is not dNSName {ident.value}"
    assert result.problem.detail == refusal(server.port, reason, ident)


async def test_san_compares_without_case(tls_server: Start) -> None:
    """DNS names are case-insensitive (RFC 4343)."""
    server = await tls_server(challenge_cert([x509.DNSName(NAME.upper())]))
    result = await check(validator(server.port))
    assert result.valid, result.problem


async def test_no_san_is_unauthorized(tls_server: Start) -> None:
    """RFC 8737 section 3: the certificate MUST contain a subjectAltName extension."""
    server = await tls_server(challenge_cert([]))
    result = await check(validator(server.port))
    assert result.problem is not None
    assert result.problem.detail == refusal(server.port, "it has no subjectAltName extension")


@pytest.mark.parametrize("alpn", [None, ["h2"]], ids=["plain-tls", "h2-only"])
async def test_server_without_acme_alpn_is_tls_problem(
    tls_server: Start, alpn: list[str] | None
) -> None:
    """RFC 8737 section 3: acme-tls/1 MUST be negotiated; a correct certificate is not enough.

    "it chose no protocol" also shows that the validator offered acme-tls/1 alone: had it
    offered h2 too, the h2-only server would have chosen h2.
    """
    server = await tls_server(alpn=alpn)
    result = await check(validator(server.port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.TLS
    assert result.problem.detail == (
        f"{NAME}:{server.port} did not negotiate acme-tls/1 (it chose no protocol)"
    )
    assert result.records[0]["alpn"] is None


async def test_not_tls_is_tls_problem(tls_server: Start) -> None:
    """A handshake failure (here: an HTTP answer instead of a ServerHello) is a tls problem."""
    server = await tls_server(greeting=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    result = await check(validator(server.port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.TLS
    assert result.problem.detail.startswith(
        f"TLS handshake with {NAME}:{server.port} failed: "
    )


async def test_connection_refused() -> None:
    """RFC 8737 section 3 step 3: nobody listening on the port is a connection problem."""
    port = free_port()
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == (
        f"connecting to {NAME}:{port} failed: connection refused"
    )
    assert result.records[0]["addresses_tried"] == ["127.0.0.1"]
    assert result.records[0]["address_used"] is None


async def test_silent_server_fails_within_the_timeout(tls_server: Start) -> None:
    """A peer that accepts and never answers the ClientHello is bounded by one timeout."""
    server = await tls_server(silent=True)
    started = time.monotonic()
    result = await check(validator(server.port, timeout=0.5))
    assert time.monotonic() - started < 2
    assert server.connections == 1
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == (
        f"the TLS handshake with {NAME}:{server.port} timed out "
        "after 0.5s (total time limit)"
    )


async def test_address_refused_by_policy_is_never_connected_to(tls_server: Start) -> None:
    """Every address passes the AddressPolicy before any connection is made."""
    server = await tls_server()
    policy = AddressPolicy([ipaddress.ip_network("10.0.0.0/8")])
    result = await check(validator(server.port, policy))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    expected = policy.problem(ipaddress.ip_address("127.0.0.1"), NAME)
    assert expected is not None
    assert result.problem.detail == expected.detail  # the policy's own wording
    assert server.connections == 0
    assert result.records[0]["addresses_refused"] == ["127.0.0.1"]
    assert result.records[0]["addresses_tried"] == []


async def test_metadata_ip_identifier_is_refused_without_connecting() -> None:
    """An IP identifier is checked too: link-local (cloud metadata) is never a target."""
    policy = AddressPolicy([ipaddress.ip_network("0.0.0.0/0")])
    result = await check(validator(free_port(), policy), Identifier("ip", "169.254.169.254"))
    expected = policy.problem(ipaddress.ip_address("169.254.169.254"), "169.254.169.254")
    assert expected is not None
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == expected.detail
    assert result.records[0]["addresses_tried"] == []
