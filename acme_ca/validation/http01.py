"""http-01 (RFC 8555 8.3): fetch the key authorization from the identifier over HTTP.

The validator resolves every host itself (``Resolver``: hosts table, then DNS), checks
the addresses with its ``AddressPolicy`` and connects to a checked address, given to
aiohttp as an IP literal: aiohttp's own resolver is one that refuses every name, so
nothing can be looked up a second time between the check and the connection (DNS
rebinding is impossible by construction) and the address recorded as ``address_used``
is the one connected to. The name travels in the Host header and, for https hops, in
SNI. A name that resolves to refused and allowed addresses is fetched from an allowed
one only (Boulder drops reserved addresses the same way); refused addresses are listed
in the record's ``addresses_refused`` and never connected to.

Redirects are followed by hand (Boulder ``va/http.go``): http and https only, the
allowed ports only, at most ``max_redirects``; every hop is resolved and checked again,
an IP-literal Location exactly like a name. https hops do not verify the certificate
(as Boulder does for http-01 redirects). The body is read up to ``max_body`` bytes.

What a problem says (RFC 8555 10.2: validation must not become a probe of the network
it runs in): what failed (a status code, refused, timed out, wrong length, does not
match, too large, a redirect to a refused address, a TLS error), never what the target
sent: no body, no Location, no header, no bytes of a response that is not HTTP (see
``http01_urls`` for how a redirect's target is named), and never the address a name
resolved to (DNS data: through a CNAME, any internal name's address). The records
(``ValidationResult.records``) keep everything, for the operator's logs; they never
reach the client.

Nothing here raises for a failed validation: the problem is returned in the result.
One deadline (``total_timeout``, [validation] timeout) covers resolution, every hop and
the body, so a server that accepts and never answers, or trickles bytes, cannot hold a
validation; ``connect_timeout`` and ``read_timeout`` bound each socket operation.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.base import ValidationResult
from acme_ca.validation.http01_urls import (
    REDIRECT_STATUSES,
    STANDARD_PORTS,
    Hop,
    challenge_url,
    check_body,
    redirect_target,
)
from acme_ca.validation.network import (
    AddressPolicy,
    candidates,
    connection_reason,
    ip_literal,
)
from acme_ca.validation.resolver import Address, Resolver

USER_AGENT = "acme-ca http-01 validation"


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    location: str | None = None
    body: bytes = b""


class _ConnectFailed(Exception):
    """No connection to one address; the next address (other family) may be tried."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _NoResolution(AbstractResolver):
    """aiohttp's resolver: refuses every name, so only checked IP literals connect."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise OSError(f"http-01 validation never lets aiohttp resolve {host!r}")

    async def close(self) -> None:
        return None


class Http01Validator:
    """Validates dns and ip identifiers (RFC 8738) with http-01."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        policy: AddressPolicy,
        port: int = 80,
        connect_timeout: float = 5,
        read_timeout: float = 5,
        total_timeout: float = 10,
        max_body: int = 8192,
        max_redirects: int = 10,
        http_redirect_port: int = 80,
        https_port: int = 443,
    ) -> None:
        """``policy`` says which addresses may be connected to ([validation]
        allowed_networks, and never the CA's own listening ports); it is required so
        that no caller gets one by accident.
        ``port`` is the first request's port ([validation] http01_port).

        Redirects may go to ``http_redirect_port``, ``https_port`` or ``port``; a
        redirect URL without a port means ``http_redirect_port`` for http and
        ``https_port`` for https (80 and 443 unless a test moves them).
        """
        self._resolver = resolver
        self._policy = policy
        self._port = port
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._total_timeout = total_timeout
        self._max_body = max_body
        self._max_redirects = max_redirects
        self._default_ports = {"http": http_redirect_port, "https": https_port}
        self._redirect_ports = sorted({http_redirect_port, https_port, port})

    async def validate(
        self, identifier: Identifier, token: str, key_authorization: str
    ) -> ValidationResult:
        """GET http://<identifier>:<port>/.well-known/acme-challenge/<token> and compare."""
        try:
            url = challenge_url(identifier, token, self._port)
        except AcmeProblem as problem:
            return ValidationResult(problem)
        records: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(self._total_timeout):
                await self._run(url, key_authorization, records)
        except AcmeProblem as problem:
            return ValidationResult(problem, tuple(records))
        except TimeoutError:
            detail = (
                f"fetching {url} for {identifier.value} timed out "
                f"after {self._total_timeout:g}s (total time limit)"
            )
            return ValidationResult(AcmeProblem(ProblemType.CONNECTION, detail), tuple(records))
        return ValidationResult(None, tuple(records))

    async def _run(self, url: URL, key_authorization: str, records: list[dict[str, Any]]) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout, sock_read=self._read_timeout
        )
        connector = aiohttp.TCPConnector(
            force_close=True, use_dns_cache=False, resolver=_NoResolution()
        )
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # never through a proxy: the address connected to is ours
        ) as session:
            first, port = url, self._port
            for number in range(self._max_redirects + 1):
                hop = Hop(number, url, port, first)
                response = await self._fetch(session, hop, records)
                if response.status in REDIRECT_STATUSES:
                    if number == self._max_redirects:
                        raise AcmeProblem(
                            ProblemType.CONNECTION,
                            f"too many redirects: more than {self._max_redirects}, from {first}",
                        )
                    url, port = redirect_target(
                        hop, response.status, response.location,
                        self._default_ports, self._redirect_ports,
                    )
                    continue
                if response.status != 200:
                    raise AcmeProblem(
                        ProblemType.UNAUTHORIZED, f"fetching {hop.name} returned {response.status}"
                    )
                check_body(hop.name, response.body, key_authorization)
                return

    async def _fetch(
        self, session: aiohttp.ClientSession, hop: Hop, records: list[dict[str, Any]]
    ) -> _Response:
        """One hop: resolve once, check, connect to a checked address (the first, then
        one of the other family), GET."""
        host = hop.url.raw_host or ""
        record: dict[str, Any] = {
            "url": str(hop.url),
            "hostname": host,
            "port": hop.port,
            "addresses_resolved": [],
            "addresses_refused": [],
            "addresses_tried": [],
            "address_used": None,
            "status": None,
        }
        records.append(record)
        unresolved = AcmeProblem(ProblemType.DNS, f"the host of {hop.name} could not be resolved")
        try:
            addresses = await self._resolver.resolve(host)
        except AcmeProblem:
            if hop.number == 0:
                raise
            raise unresolved from None
        record["addresses_resolved"] = [str(a) for a in addresses]
        usable, refused = self._policy.allowed_addresses(addresses, host, hop.port)
        record["addresses_refused"] = [str(a) for a in addresses if a not in usable]
        if not usable:
            if hop.number == 0:
                raise refused or AcmeProblem(ProblemType.DNS, f"no addresses found for {host}")
            reason = self._policy.refused(addresses[0], hop.port) if addresses else None
            if reason is None:
                raise unresolved
            raise AcmeProblem(
                ProblemType.CONNECTION,
                f"redirect {hop.number} from {hop.first} goes to an address that {reason}: "
                "validation never connects there",
            )
        failures = []
        for address in candidates(usable):
            record["addresses_tried"].append(str(address))
            record["address_used"] = str(address)
            try:
                return await self._request(session, hop, address, record)
            except _ConnectFailed as exc:
                record["address_used"] = None
                failures.append(exc.detail)
        raise AcmeProblem(ProblemType.CONNECTION, "; ".join(dict.fromkeys(failures)))

    async def _request(
        self,
        session: aiohttp.ClientSession,
        hop: Hop,
        address: Address,
        record: dict[str, Any],
    ) -> _Response:
        url, port = hop.url, hop.port
        host = url.raw_host or ""
        target = url.with_host(str(address)).with_port(port)
        literal = ip_literal(host) is not None
        host_header = f"[{host}]" if literal and ":" in host else host
        if port != STANDARD_PORTS[url.scheme]:
            host_header += f":{port}"
        headers = {
            "Host": host_header,
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
        }
        https = url.scheme == "https"
        try:
            async with session.get(
                target,
                headers=headers,
                allow_redirects=False,
                ssl=not https,  # https hops: no certificate verification (Boulder)
                server_hostname=host if https and not literal else None,  # SNI
            ) as resp:
                record["status"] = resp.status
                if resp.status in REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    record["location"] = location
                    return _Response(resp.status, location)
                if resp.status != 200:
                    return _Response(resp.status)
                return _Response(200, body=await self._read_body(resp, hop))
        except aiohttp.ClientConnectorError as exc:
            raise _ConnectFailed(
                f"connecting to {hop.where} failed: {_reason(exc.os_error)}"
            ) from None
        except aiohttp.ConnectionTimeoutError:
            raise _ConnectFailed(
                f"connecting to {hop.where} failed: "
                f"timed out after {self._connect_timeout:g}s"
            ) from None
        except aiohttp.SocketTimeoutError:
            reason = f"no data for {self._read_timeout:g}s"
        except aiohttp.ServerDisconnectedError:
            reason = "the server closed the connection without a complete response"
        except aiohttp.ClientPayloadError:
            reason = "the response body was malformed or cut short"
        except aiohttp.ClientResponseError:
            reason = "the response is not valid HTTP"  # aiohttp's message quotes the bytes
        except aiohttp.ClientOSError as exc:
            reason = _reason(exc)
        except aiohttp.ClientError as exc:
            reason = f"the request failed ({type(exc).__name__})"
        raise AcmeProblem(ProblemType.CONNECTION, f"{hop.fetching} failed: {reason}")

    async def _read_body(self, resp: aiohttp.ClientResponse, hop: Hop) -> bytes:
        """At most max_body bytes; one more byte than that is a failure, the rest unread."""
        too_large = AcmeProblem(
            ProblemType.INCORRECT_RESPONSE,
            f"fetching {hop.name}: response larger than {self._max_body} bytes",
        )
        if resp.content_length is not None and resp.content_length > self._max_body:
            raise too_large
        body = bytearray()
        while len(body) <= self._max_body:
            chunk = await resp.content.read(self._max_body + 1 - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) > self._max_body:
            raise too_large
        return bytes(body)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return connection_reason(exc)
    return str(exc) or type(exc).__name__
