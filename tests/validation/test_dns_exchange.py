"""The UDP exchange of the DNS client (``dns.udp_exchange``): what it accepts as the
answer to a query. RFC 5452 section 3: a resolver accepts an answer only from the
address and port the query went to, with the query's ID and question."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import dns.inet
import dns.message
import dns.rrset
import pytest

from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.dns import DnsClient, _sent_by

NAME = "spoof.example"
TRUE, FORGED = "192.0.2.1", "198.51.100.66"
Reply = Callable[[dns.message.Message, Any, asyncio.DatagramTransport], None]


def answer(query: dns.message.Message, address: str) -> bytes:
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(NAME + ".", 60, "IN", "A", address))
    return response.to_wire()


class _Server(asyncio.DatagramProtocol):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.reply(dns.message.from_wire(data), addr, self.transport)


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Reply], Any]]:
    transports: list[asyncio.BaseTransport] = []

    async def start(reply: Reply, host: str = "127.0.0.1") -> str:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Server(reply), local_addr=(host, 0))
        transports.append(transport)
        port = transport.get_extra_info("sockname")[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    yield start
    for transport in transports:
        transport.close()


@pytest.mark.parametrize(("host", "family"), [("127.0.0.1", socket.AF_INET),
                                             ("::1", socket.AF_INET6)])
async def test_a_datagram_from_another_port_is_ignored(server: Callable[..., Any], host: str,
                                                       family: int):
    """RFC 5452 3: a forged answer from another port, arriving first, is not taken;
    the server's own answer is. Over IPv6 too ("[::1]:port" in the resolvers)."""
    with socket.socket(family, socket.SOCK_DGRAM) as forger:
        forger.bind((host, 0))

        def reply(query: dns.message.Message, addr: Any,
                  transport: asyncio.DatagramTransport) -> None:
            forger.sendto(answer(query, FORGED), addr)
            asyncio.get_running_loop().call_later(0.05, transport.sendto,
                                                  answer(query, TRUE), addr)

        address = await server(reply, host)
        found = await DnsClient([address], timeout=2).query(NAME, "A")
    assert [r.address for r in found.rdatas] == [TRUE]


async def test_an_answer_to_another_question_is_malformed(server: Callable[[Reply], Any]):
    """RFC 5452 3: a datagram from the server with another ID is no answer to the
    query: a dns problem saying the server sent a malformed answer."""

    def reply(query: dns.message.Message, addr: Any,
              transport: asyncio.DatagramTransport) -> None:
        other = dns.message.make_query(NAME, "A")
        other.id = (query.id + 1) % 65536
        transport.sendto(answer(other, FORGED), addr)

    address = await server(reply)
    with pytest.raises(AcmeProblem) as raised:
        await DnsClient([address], timeout=2).query(NAME, "A")
    assert raised.value.type is ProblemType.DNS
    assert f"{address} sent a malformed answer" in raised.value.detail


@pytest.mark.parametrize(("resolver", "source", "taken"), [
    ("fe80::1%4", ("fe80::1%eth0", 53, 0, 4), True),  # recvfrom names the interface
    ("fe80::1%4", ("fe80::1%eth1", 53, 0, 5), False),  # the same address on another link
    ("fe80::1%4", ("fe80::1%eth0", 5353, 0, 4), False),
    ("2001:db8::53", ("2001:db8:0:0::53", 53, 0, 0), True),
    ("2001:db8::53", ("2001:db8::54", 53, 0, 0), False),
    ("192.0.2.53", ("192.0.2.53", 53), True),
    ("192.0.2.53", ("192.0.2.54", 53), False),
])
def test_the_sender_is_the_resolver_by_address_port_and_scope(
        resolver: str, source: tuple[Any, ...], taken: bool) -> None:
    """RFC 5452 3 (the answer's source is the address and port the query went to), as
    dnspython's udp_with_fallback decides it: a link-local resolver configured with its
    scope's number ("fe80::1%4") answers from "fe80::1%eth0" with scope index 4, which
    is it; compared as text the two differ and every answer of that resolver was
    ignored until the lookup timed out. (Real link-local sockets need an interface's
    address: the tests use 127.0.0.1 and ::1 only, so the rule is tested alone.)"""
    family = dns.inet.af_for_address(resolver)
    destination = dns.inet.low_level_address_tuple((resolver, 53), family)
    packed = dns.inet.inet_pton(family, destination[0])
    assert _sent_by(source, destination, packed, family) is taken
