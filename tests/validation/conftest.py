"""Fixtures of the validation tests: the responders validation talks to, on 127.0.0.1.

``serve`` (an aiohttp server) and ``raw_serve`` (a raw asyncio one) answer http-01
(handlers in http01_helpers.py); ``tls_server`` answers tls-alpn-01 (certificates in
tlsalpn01_helpers.py); ``fake_dns`` is a DNS server, UDP and TCP on one port:

    server, address = await fake_dns(records={
        "_acme-challenge.web.bluerobin.local": ['TXT "digest"'],
        "bluerobin.local": ['CAA 0 issue "ca.bluerobin.local"'],
        "alias.bluerobin.local": ["CNAME target.acme-dns.internal."],
    })

It answers from a table (name -> zone-file style "TYPE rdata" strings; ``answers``
is the short form name -> addresses for A/AAAA). A name absent from the table, and
not the parent of a name in it (an empty non-terminal), is NXDOMAIN; a present name
without the type asked is NOERROR with no data. A CNAME is answered for any other
type; with ``chase=True`` the server follows it through its own table as a recursive
resolver would, else it returns the CNAME alone as an authoritative server does.

``rcodes`` forces an rcode for a name (SERVFAIL, REFUSED, ...); ``silent`` answers
nothing, over UDP or TCP; ``delay`` answers every question that many seconds late (a
slow server: the attribute may be changed while it runs). A UDP answer larger than
the client's EDNS payload (512 without EDNS), or than ``udp_limit``, is replaced by an
empty one with TC set, so the client must retry over TCP. Every question is logged
in ``log`` (name, type, transport, EDNS payload) and, as (name, type), in ``queries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.validation.http01_helpers import Handler, RawHandler, RawServe, Serve
from tests.validation.tlsalpn01_helpers import ACME, KEY, Server, Start, challenge_cert


@dataclass(frozen=True)
class Question:
    name: str
    rdtype: str
    transport: str  # "udp" or "tcp"
    payload: int | None  # the EDNS UDP payload size offered, None without EDNS


class FakeDns(asyncio.DatagramProtocol):
    """Answers questions from a table of records; see the module docstring."""

    def __init__(
        self,
        answers: Mapping[str, Sequence[str]] | None = None,
        rcodes: Mapping[str, dns.rcode.Rcode] | None = None,
        silent: bool = False,
        records: Mapping[str, Sequence[str]] | None = None,
        chase: bool = False,
        udp_limit: int | None = None,
        delay: float = 0.0,
    ) -> None:
        self.records: dict[str, list[str]] = {
            _key(name): list(entries) for name, entries in (records or {}).items()
        }
        for name, addresses in (answers or {}).items():
            entries = self.records.setdefault(_key(name), [])
            for address in addresses:
                family = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
                entries.append(f"{family} {address}")
        self.rcodes = {_key(name): rcode for name, rcode in (rcodes or {}).items()}
        self.silent = silent
        self.chase = chase
        self.udp_limit = udp_limit
        self.delay = delay
        self.log: list[Question] = []
        self.queries: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None

    # --- UDP -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        response = self.respond(query, "udp")
        if response is None or self.transport is None:
            return
        limit = query.payload if query.edns >= 0 else 512
        if self.udp_limit is not None:
            limit = min(limit, self.udp_limit)
        try:
            wire = response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC
            wire = truncated.to_wire()
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, wire, addr)
        else:
            self.transport.sendto(wire, addr)

    # --- TCP (RFC 1035 4.2.2: two-byte length prefix) ------------------------------

    async def serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                query = dns.message.from_wire(await reader.readexactly(length))
                response = self.respond(query, "tcp")
                if self.delay:
                    await asyncio.sleep(self.delay)  # a slow server, not test ordering
                if response is not None:
                    wire = response.to_wire(max_size=65535)
                    writer.write(struct.pack("!H", len(wire)) + wire)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    # --- answers -------------------------------------------------------------------

    def respond(self, query: dns.message.Message, transport: str) -> dns.message.Message | None:
        question = query.question[0]
        name = _key(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        payload = query.payload if query.edns >= 0 else None
        self.log.append(Question(name, rdtype, transport, payload))
        self.queries.append((name, rdtype))
        if self.silent:
            return None
        response = dns.message.make_response(query)
        if name in self.rcodes:
            response.set_rcode(self.rcodes[name])
            return response
        current, seen = name, {name}
        while True:
            if not self._exists(current):
                response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            found = self._rrset(current, rdtype)
            if found is not None:
                response.answer.append(found)
                return response
            cname = self._rrset(current, "CNAME")
            if cname is None:
                return response  # NOERROR, no data
            response.answer.append(cname)
            current = _key(cname[0].to_text())
            if not self.chase or current in seen:
                return response
            seen.add(current)

    def _exists(self, name: str) -> bool:
        return any(key == name or key.endswith("." + name) for key in self.records)

    def _rrset(self, name: str, rdtype: str) -> dns.rrset.RRset | None:
        texts = [
            text for kind, _, text in (e.partition(" ") for e in self.records.get(name, ()))
            if kind.upper() == rdtype
        ]
        if not texts:
            return None
        return dns.rrset.from_text_list(
            dns.name.from_text(name + "."), 60, "IN", rdtype, texts
        )


def _key(name: str) -> str:
    return name.strip().lower().rstrip(".")


StartDns = Callable[..., Awaitable[tuple[FakeDns, str]]]


@pytest.fixture
async def fake_dns() -> AsyncIterator[StartDns]:
    """start(**FakeDns kwargs) -> (server, "127.0.0.1:port"); closed after the test."""
    transports: list[asyncio.BaseTransport] = []
    servers: list[asyncio.Server] = []

    async def start(**kwargs: Any) -> tuple[FakeDns, str]:
        loop = asyncio.get_running_loop()
        for _ in range(20):  # the TCP port may be taken by someone else: try another
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: FakeDns(**kwargs), local_addr=("127.0.0.1", 0)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                server = await asyncio.start_server(protocol.serve_tcp, "127.0.0.1", port)
            except OSError:
                transport.close()
                continue
            transports.append(transport)
            servers.append(server)
            return protocol, f"127.0.0.1:{port}"
        raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")

    yield start
    for transport in transports:
        transport.close()
    for server in servers:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await server.wait_closed()


async def close_all(servers: list[asyncio.Server], tasks: set[asyncio.Task[None]]) -> None:
    """Stop listening, end the connections still open (their handlers' tasks), and wait
    until the servers are closed."""
    for server in servers:
        server.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        await server.wait_closed()


@pytest.fixture
async def serve(aiohttp_server: Any) -> Serve:
    """serve({path: handler}) -> port of an aiohttp server on 127.0.0.1."""

    async def start(routes: dict[str, Handler]) -> int:
        app = web.Application()
        for path, handler in routes.items():
            app.router.add_get(path, handler)
        server = await aiohttp_server(app)
        return int(server.port)

    return start


@pytest.fixture
async def raw_serve() -> AsyncIterator[RawServe]:
    """raw_serve(handler) -> port of an asyncio server; its connections end with the test."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(handler: RawHandler) -> int:
        async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await handler(reader, writer)
            except OSError:
                pass  # the validator hung up: expected
            finally:
                writer.close()

        server = await asyncio.start_server(guarded, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    await close_all(servers, tasks)


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[Start]:
    """start(cert, alpn=ACME, silent=False) -> a Server; connections end with the test."""
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(
        cert: x509.Certificate | None = None,
        alpn: list[str] | None = ACME,
        silent: bool = False,
        greeting: bytes = b"",
    ) -> Server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert_path, key_path = tmp_path / f"{len(servers)}.crt", tmp_path / f"{len(servers)}.key"
        cert_path.write_bytes((cert or challenge_cert()).public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            KEY.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_path, key_path)
        if alpn is not None:
            context.set_alpn_protocols(alpn)
        server = Server(port=0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            server.connections += 1
            try:
                if greeting:
                    writer.write(greeting)
                if not silent and not greeting:
                    await writer.start_tls(context)
                await reader.read()  # until the validator hangs up
            except (OSError, ssl.SSLError):
                pass  # the validator hung up or refused the handshake: expected
            finally:
                writer.transport.abort()

        context.sni_callback = lambda _sock, name, _ctx: server.snis.append(name)
        listener = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(listener)
        server.port = int(listener.sockets[0].getsockname()[1])
        return server

    yield start
    await close_all(servers, tasks)
