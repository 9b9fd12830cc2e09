"""tls-alpn-01 (RFC 8737; RFC 8738 section 6 for IP identifiers).

The name is resolved here (an IP identifier is its own address), every address is
checked against the ``AddressPolicy`` before any connection, and the connection goes
to that very address: the first, then one of the other family if the first cannot be
reached (as http-01). The handshake offers ALPN "acme-tls/1" alone, TLS 1.2+, and SNI
= the name (an IP's reverse-DNS name). The self-signed certificate is not verified as
a chain; it must hold exactly one subjectAltName entry, the identifier, and a critical
acmeIdentifier extension with SHA-256(key authorization). One deadline (``timeout``)
covers everything; the problem is returned, never raised.

A problem says what is wrong with the certificate, never what it holds (no names
found, no digest found): a TLS service inside the network answers too, and its
certificate names internal hosts (RFC 8555 10.2; see http01). It names the identifier
and port ("web.example:443"), never the address the name resolved to (DNS data); the
record keeps the addresses for the operator.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import ssl
from typing import Any

from cryptography import x509

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.base import ValidationResult
from acme_ca.validation.network import AddressPolicy, candidates, connection_reason, host_port
from acme_ca.validation.resolver import Address, Resolver

ACME_TLS_ALPN = "acme-tls/1"  # RFC 8737 section 6.2
ID_PE_ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 section 6.1
_OCTET_STRING_32 = b"\x04\x20"  # DER tag and length of the extension's value


class TlsAlpn01Validator:
    """Validates dns and ip identifiers (RFC 8738) with tls-alpn-01."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        port: int = 443,
        policy: AddressPolicy | None = None,
        timeout: float = 10.0,
    ) -> None:
        """``port`` is 443 outside tests; ``policy`` None means the default allowed
        networks (private ranges and loopback), never "anywhere"."""
        self._resolver = resolver
        self._port = port
        self._policy = policy or AddressPolicy()
        self._timeout = timeout
        self._context = _client_context()

    async def validate(
        self, identifier: Identifier, token: str, key_authorization: str
    ) -> ValidationResult:
        """Handshake with the identifier and check the certificate it presents."""
        try:
            sni = sni_for(identifier)
        except AcmeProblem as problem:
            return ValidationResult(problem)
        record: dict[str, Any] = {
            "hostname": identifier.value,
            "port": self._port,
            "sni": sni,
            "addresses_resolved": [],
            "addresses_refused": [],
            "addresses_tried": [],
            "address_used": None,
            "alpn": None,
            "tls_version": None,
            "failure": None,
        }
        try:
            async with asyncio.timeout(self._timeout):
                der = await self._handshake(identifier, sni, record)
            _check_certificate(der, identifier, key_authorization, self._where(record))
        except AcmeProblem as problem:
            record["failure"] = problem.detail
            return ValidationResult(problem, (record,))
        except TimeoutError:
            detail = f"{self._stage(record)} timed out after {self._timeout:g}s (total time limit)"
            record["failure"] = detail
            return ValidationResult(AcmeProblem(ProblemType.CONNECTION, detail), (record,))
        return ValidationResult(None, (record,))

    async def _handshake(self, identifier: Identifier, sni: str, record: dict[str, Any]) -> bytes:
        """Resolve, check, connect, handshake; the peer certificate in DER."""
        name = identifier.value
        if identifier.type == "ip":
            addresses: list[Address] = [ipaddress.ip_address(name)]
        else:
            addresses = await self._resolver.resolve(name)
        record["addresses_resolved"] = [str(a) for a in addresses]
        allowed, refused = self._policy.allowed_addresses(addresses, name, self._port)
        record["addresses_refused"] = [str(a) for a in addresses if a not in allowed]
        if not allowed:
            assert refused is not None
            raise refused
        writer: asyncio.StreamWriter | None = None
        failures: list[str] = []
        for address in candidates(allowed):  # the first, then one of the other family
            record["addresses_tried"].append(str(address))
            try:
                _, writer = await asyncio.open_connection(str(address), self._port)
            except OSError as exc:
                where = host_port(name, self._port)
                failures.append(f"connecting to {where} failed: {connection_reason(exc)}")
                continue
            record["address_used"] = str(address)
            break
        if writer is None:
            raise AcmeProblem(ProblemType.CONNECTION, "; ".join(dict.fromkeys(failures)))
        where = self._where(record)
        try:
            await writer.start_tls(self._context, server_hostname=sni)
            ssl_object = writer.get_extra_info("ssl_object")
            record["alpn"] = ssl_object.selected_alpn_protocol()
            record["tls_version"] = ssl_object.version()
            der: bytes | None = ssl_object.getpeercert(binary_form=True)
        except ssl.SSLError as exc:
            raise AcmeProblem(
                ProblemType.TLS, f"TLS handshake with {where} failed: {exc.reason or exc}"
            ) from None
        except OSError as exc:
            raise AcmeProblem(
                ProblemType.CONNECTION,
                f"TLS handshake with {where} failed: {connection_reason(exc)}",
            ) from None
        except ValueError:  # the ssl module refuses the name as SNI
            raise AcmeProblem(ProblemType.MALFORMED, f"{sni!r} is not a valid SNI name") from None
        finally:
            writer.transport.abort()  # RFC 8737 section 4: close right after the handshake
        if record["alpn"] != ACME_TLS_ALPN:
            chosen = "another protocol" if record["alpn"] else "no protocol"
            raise AcmeProblem(
                ProblemType.TLS, f"{where} did not negotiate {ACME_TLS_ALPN} (it chose {chosen})"
            )
        if not der:
            raise AcmeProblem(ProblemType.TLS, f"{where} presented no certificate")
        return der

    def _where(self, record: dict[str, Any]) -> str:
        """'web.example:443' (an IP identifier is its own address): never the address a
        name resolved to."""
        return host_port(record["hostname"], self._port)

    def _stage(self, record: dict[str, Any]) -> str:
        """What was under way when the deadline passed."""
        if not record["addresses_tried"]:
            return f"resolving {record['hostname']}"
        if record["address_used"] is None:
            return f"connecting to {self._where(record)}"
        return f"the TLS handshake with {self._where(record)}"


def sni_for(identifier: Identifier) -> str:
    """The SNI: the DNS name, or the reverse-DNS name of an IP (RFC 8738 section 6)."""
    if identifier.type not in ("dns", "ip"):
        raise AcmeProblem(
            ProblemType.UNSUPPORTED_IDENTIFIER,
            f"tls-alpn-01 cannot validate a {identifier.type!r} identifier",
        )
    if identifier.type == "ip":
        try:
            return ipaddress.ip_address(identifier.value).reverse_pointer
        except ValueError:
            raise AcmeProblem(
                ProblemType.MALFORMED, f"{identifier.value!r} is not an IP address"
            ) from None
    name = identifier.value
    if name.startswith("*."):
        raise AcmeProblem(ProblemType.MALFORMED, f"tls-alpn-01 cannot validate the wildcard {name}")
    return name


def _check_certificate(
    der: bytes, identifier: Identifier, key_authorization: str, where: str
) -> None:
    """RFC 8737 section 3 (RFC 8738 section 6): the SAN and the acmeIdentifier extension."""

    def refuse(reason: str) -> AcmeProblem:
        return AcmeProblem(
            ProblemType.UNAUTHORIZED,
            f"the certificate from {where} is not a valid tls-alpn-01 response: {reason}",
        )

    try:
        extensions = x509.load_der_x509_certificate(der).extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise refuse("it could not be parsed") from None
    try:
        names = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        raise refuse("it has no subjectAltName extension") from None
    if len(names) != 1:
        raise refuse(f"its subjectAltName has {len(names)} entries, not exactly one")
    if not _is_identifier(names[0], identifier):
        kind = "iPAddress" if identifier.type == "ip" else "dNSName"
        raise refuse(f"its subjectAltName entry is not {kind} {identifier.value}")
    try:
        extension = extensions.get_extension_for_oid(ID_PE_ACME_IDENTIFIER)
    except x509.ExtensionNotFound:
        raise refuse("it has no acmeIdentifier extension (1.3.6.1.5.5.7.1.31)") from None
    if not extension.critical:
        raise refuse("the acmeIdentifier extension is not marked critical")
    value = extension.value.public_bytes()
    if len(value) != 34 or not value.startswith(_OCTET_STRING_32):
        raise refuse("the acmeIdentifier extension is not a DER OCTET STRING of 32 bytes")
    digest = hashlib.sha256(key_authorization.encode()).digest()
    if not hmac.compare_digest(value[2:], digest):
        raise refuse(
            "the acmeIdentifier extension does not hold the SHA-256 digest of the key "
            f"authorization ({digest.hex()})"
        )


def _client_context() -> ssl.SSLContext:
    """TLS 1.2+, ALPN acme-tls/1 only, no chain or name verification (self-signed)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 section 4
    context.set_alpn_protocols([ACME_TLS_ALPN])
    return context


def _is_identifier(name: x509.GeneralName, identifier: Identifier) -> bool:
    """Is the certificate's one SAN entry the identifier? Compared as text, never by
    building an ``x509.DNSName`` from the peer's bytes: a dNSName is an IA5String (RFC
    5280 4.2.1.6), but a peer may put UTF-8 there, which cryptography hands over decoded
    and refuses to rebuild (ValueError). Such a name is not ASCII, so it is not the
    identifier, even when it lowercases to one (the KELVIN SIGN becomes "k")."""
    if identifier.type == "ip":
        return isinstance(name, x509.IPAddress) and name.value == ipaddress.ip_address(
            identifier.value
        )
    if not isinstance(name, x509.DNSName) or not name.value.isascii():
        return False
    return name.value.lower() == identifier.value.lower()  # DNS names ignore case
