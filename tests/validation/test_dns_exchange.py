"""The UDP exchange of the DNS client (``dns.udp_exchange``): what it accepts as the
answer to a query. RFC 5452 section 3: a resolver accepts an answer only from the
address and port the query went to, with the query's ID and question."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import dns.message
import dns.rrset
import pytest

from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.dns import DnsClient

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

    async def start(reply: Reply) -> str:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Server(reply), local_addr=("127.0.0.1", 0))
        transports.append(transport)
        return f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"

    yield start
    for transport in transports:
        transport.close()


async def test_a_datagram_from_another_port_is_ignored(server: Callable[[Reply], Any]):
    """RFC 5452 3: a forged answer from another port, arriving first, is not taken;
    the server's own answer is."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
        forger.bind(("127.0.0.1", 0))

        def reply(query: dns.message.Message, addr: Any,
                  transport: asyncio.DatagramTransport) -> None:
            forger.sendto(answer(query, FORGED), addr)
            asyncio.get_running_loop().call_later(0.05, transport.sendto,
                                                  answer(query, TRUE), addr)

        address = await server(reply)
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
