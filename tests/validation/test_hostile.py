"""Hostile responders against http-01 (RFC 8555 8.3, 10.2 "Request forgery"; issue "a
validation authority that is safe to run inside a network").

RFC 8555 10.2: the CA "may be forced to make requests to arbitrary hosts"; it must not
become a proxy into its own network. Every case here ends with a precise problem, and
no case may slow down a well-behaved validation running beside it. The responders run
on 127.0.0.1; the policy allows loopback (the configuration's default) unless a test
removes it. Helpers and fixtures are shared with test_http01.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest
from aiohttp import web

from acme_ca.cli.wiring import default_validators
from acme_ca.config import load_config
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import ProblemType
from acme_ca.validation import Resolver
from acme_ca.validation.network import AddressPolicy
from acme_ca.validation.resolver import Address
from tests.validation.http01_helpers import (
    FIFTY_MB,
    KEY_AUTH,
    NAME,
    PATH,
    RawHandler,
    RawServe,
    Serve,
    check,
    redirect,
    reply,
    validator,
)
from tests.waiting import within

URL = f"http://{NAME}:{{port}}{PATH}"
LINK_LOCAL = "link-local (where cloud metadata services live): validation never connects there"
NO_LOOPBACK = AddressPolicy([ipaddress.ip_network("10.0.0.0/8")])


class Scripted(Resolver):
    """A DNS that answers differently on consecutive lookups (rebinding): the n-th
    lookup gets the n-th answer, the last one repeats."""

    def __init__(self, *answers: list[str]) -> None:
        super().__init__({}, [])
        self._answers = [[ipaddress.ip_address(a) for a in answer] for answer in answers]
        self.lookups: list[str] = []

    async def resolve(self, name: str) -> list[Address]:
        self.lookups.append(name)
        return list(self._answers[min(len(self.lookups), len(self._answers)) - 1])


def silent_counting() -> tuple[RawHandler, list[int]]:
    """A responder that accepts, reads and never answers; counts its connections."""
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.read()  # returns when the validator hangs up

    return handler, connections


async def test_redirect_loop_ends_at_the_limit(serve: Serve):
    """A redirect loop fails once max_redirects is exceeded, with every hop recorded."""
    port = await serve({PATH: redirect(PATH)})
    result = await check(validator(port, max_redirects=3))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == (
        f"too many redirects: more than 3, from {URL.format(port=port)}"
    )
    assert len(result.records) == 4


ALWAYS_REFUSED = (
    "is always refused (link-local, cloud metadata, unspecified, multicast or broadcast): "
    "validation never connects there"
)


def refused_redirect(port: int) -> str:
    """A redirect's target is the target's choice: the problem names neither its host nor
    its address, only the rule (RFC 8555 10.2; test_no_probe.py)."""
    return f"redirect 1 from {URL.format(port=port)} goes to an address that {ALWAYS_REFUSED}"


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        # 169.254.169.254 as one decimal number: the system resolver maps it
        "http://2852039166/latest/meta-data/",
        "http://0.0.0.0/",
    ],
    ids=["metadata", "metadata-v6", "v4-mapped", "decimal", "unspecified"],
)
async def test_redirect_to_a_metadata_address_is_refused_before_connecting(
    serve: Serve, location: str
):
    """RFC 8555 10.2: an IP-literal Location is checked like a name, before any connection."""
    port = await serve({PATH: redirect(location)})
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == refused_redirect(port)
    first, second = result.records
    assert first["status"] == 302
    assert second["addresses_refused"] == second["addresses_resolved"]
    assert second["addresses_tried"] == []
    assert second["address_used"] is None


async def test_redirect_to_a_name_resolving_to_metadata_is_refused(serve: Serve):
    """A name is judged by the address it resolves to (here through the hosts table)."""
    port = await serve({PATH: redirect("http://metadata.bluerobin.local/latest/meta-data/")})
    hosts = {NAME: "127.0.0.1", "metadata.bluerobin.local": "169.254.169.254"}
    result = await check(validator(port, hosts))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == refused_redirect(port)
    assert result.records[1]["addresses_refused"] == ["169.254.169.254"]
    assert result.records[1]["addresses_tried"] == []


async def test_metadata_ip_identifier_is_refused(raw_serve: RawServe):
    """RFC 8738 3: an ip identifier is its own address, refused before connecting."""
    result = await check(validator(80, hosts={}), Identifier("ip", "169.254.169.254"))
    assert result.problem is not None
    assert result.problem.detail == f"169.254.169.254 is {LINK_LOCAL}"
    (record,) = result.records
    assert record["addresses_tried"] == []


async def test_name_outside_the_allowed_networks_is_never_connected_to(raw_serve: RawServe):
    """[validation] allowed_networks without loopback: 127.0.0.1 is refused, unconnected."""
    handler, connections = silent_counting()
    port = await raw_serve(handler)
    result = await check(validator(port, policy=NO_LOOPBACK))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == (
        f"{NAME} resolves to an address that is outside [validation] allowed_networks: "
        "validation never connects there"
    )
    assert connections == []
    assert result.records[0]["addresses_refused"] == ["127.0.0.1"]
    assert result.records[0]["address_used"] is None


async def test_mixed_answer_uses_the_allowed_address_only(serve: Serve):
    """Boulder-like: refused addresses are dropped and the allowed one is used."""
    port = await serve({PATH: reply()})
    resolver = Scripted(["169.254.169.254", "8.8.8.8", "127.0.0.1"])
    result = await check(validator(port, resolver=resolver))
    assert result.valid, result.problem
    (record,) = result.records
    assert record["addresses_refused"] == ["169.254.169.254", "8.8.8.8"]
    assert record["addresses_tried"] == ["127.0.0.1"]
    assert record["address_used"] == "127.0.0.1"


async def test_dns_rebinding_cannot_move_the_connection(raw_serve: RawServe):
    """Resolve once, check, connect to that address: a second lookup would have said
    127.0.0.2 (refused here), where another responder waits and counts connections."""
    seen: dict[str, int] = {"127.0.0.1": 0, "127.0.0.2": 0}

    def answering(address: str) -> RawHandler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen[address] += 1
            await reader.readuntil(b"\r\n\r\n")
            body = KEY_AUTH.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

        return handler

    port = await raw_serve(answering("127.0.0.1"))
    other = await asyncio.start_server(answering("127.0.0.2"), "127.0.0.2", port)
    try:
        resolver = Scripted(["127.0.0.1"], ["127.0.0.2"])
        policy = AddressPolicy([ipaddress.ip_network("127.0.0.1/32")])
        result = await check(validator(port, resolver=resolver, policy=policy))
    finally:
        other.close()
        await other.wait_closed()
    assert result.valid, result.problem
    assert resolver.lookups == [NAME]
    assert seen == {"127.0.0.1": 1, "127.0.0.2": 0}
    assert result.records[0]["address_used"] == "127.0.0.1"


async def test_every_hop_is_resolved_and_checked_again(serve: Serve):
    """A same-name redirect is looked up again; the new (rebound) answer is refused."""
    port = await serve({PATH: redirect("/next"), "/next": reply()})
    resolver = Scripted(["127.0.0.1"], ["169.254.169.254"])
    result = await check(validator(port, resolver=resolver))
    assert result.problem is not None
    assert result.problem.detail == refused_redirect(port)
    assert resolver.lookups == [NAME, NAME]
    assert [r["address_used"] for r in result.records] == ["127.0.0.1", None]


def huge_body(content_length: bool) -> tuple[RawHandler, dict[str, int]]:
    """A 50 MB response, streamed; `sent` counts what the validator let through."""
    state = {"sent": 0}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        length = f"Content-Length: {FIFTY_MB}\r\n" if content_length else ""
        writer.write(f"HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n".encode())
        chunk = b"A" * 65536
        while state["sent"] < FIFTY_MB:
            writer.write(chunk)
            await writer.drain()
            state["sent"] += len(chunk)

    return handler, state


@pytest.mark.parametrize("content_length", [True, False], ids=["length", "streamed"])
async def test_fifty_megabyte_body_fails_fast(raw_serve: RawServe, content_length: bool):
    """RFC 8555 8.3 (limit the response): at most max_body + 1 bytes are ever read."""
    handler, state = huge_body(content_length)
    port = await raw_serve(handler)
    started = time.monotonic()
    result = await check(validator(port))
    assert time.monotonic() - started < 2
    assert result.problem is not None
    assert result.problem.type is ProblemType.INCORRECT_RESPONSE
    assert result.problem.detail == (
        f"fetching {URL.format(port=port)}: response larger than 8192 bytes"
    )
    assert state["sent"] < FIFTY_MB


async def test_declared_length_over_the_limit_fails_before_reading(raw_serve: RawServe):
    """A Content-Length over max_body fails at once, without waiting for the body."""

    async def announce(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {FIFTY_MB}\r\n\r\n".encode())
        await reader.read()  # the body never comes

    port = await raw_serve(announce)
    result = await check(validator(port, read_timeout=3, total_timeout=3))
    assert result.problem is not None
    assert result.problem.detail.endswith("response larger than 8192 bytes")


def timed_out(port: int, seconds: str) -> str:
    url = URL.format(port=port)
    return f"fetching {url} for {NAME} timed out after {seconds} (total time limit)"


async def test_server_that_never_answers_fails_within_total_timeout(raw_serve: RawServe):
    """Accepts, reads, never answers: the total deadline ends it, not the read timeout."""
    handler, connections = silent_counting()
    port = await raw_serve(handler)
    started = time.monotonic()
    result = await check(validator(port, read_timeout=30, total_timeout=0.5))
    assert time.monotonic() - started < 1.5
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == timed_out(port, "0.5s")
    assert result.records[0]["address_used"] == "127.0.0.1"
    assert connections == [1]


async def test_trickling_server_cannot_outlast_total_timeout(raw_serve: RawServe):
    """A byte every 50 ms keeps the read timeout happy; the total deadline still holds."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"X-Slow: y\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    port = await raw_serve(trickle)
    started = time.monotonic()
    result = await check(validator(port, read_timeout=1, total_timeout=0.5))
    assert time.monotonic() - started < 1.5
    assert result.problem is not None
    assert result.problem.detail == timed_out(port, "0.5s")


async def test_twenty_silent_responders_do_not_delay_a_good_validation(
    serve: Serve, raw_serve: RawServe
):
    """The server stays responsive: 20 validations held by silent responders run beside
    a good one, which completes while all 20 are still held; each hostile one ends at
    its own deadline. That deadline (3 s) leaves a busy machine the time to open the 20
    connections and run the good validation, which 1 s did not always."""
    connected = asyncio.Event()
    connections = 0

    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 20:
            connected.set()
        await reader.read()

    async def answer(_: web.Request) -> web.Response:
        return web.Response(text=KEY_AUTH)

    slow_port = await raw_serve(silent)
    good_port = await serve({PATH: answer})
    hostile = [
        asyncio.ensure_future(check(validator(slow_port, total_timeout=3))) for _ in range(20)
    ]
    try:
        await within(connected.wait(), "all 20 to hold a connection")
        started = time.monotonic()
        result = await check(validator(good_port))
        elapsed = time.monotonic() - started
        still_held = sum(not task.done() for task in hostile)
    finally:
        outcomes = await asyncio.gather(*hostile)
    assert result.valid, result.problem
    assert elapsed < 2  # not queued behind the hostile ones (3 s)
    assert still_held == 20
    for outcome in outcomes:
        assert outcome.problem is not None
        assert outcome.problem.detail == timed_out(slow_port, "3s")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"validation.allowed_networks": ["10.0.0.0/8"]},
            f"{NAME} resolves to an address that is outside [validation] allowed_networks: "
            "validation never connects there",
        ),
        ({"validation.timeout": "1s"}, "timed out after 1s (total time limit)"),
    ],
    ids=["allowed_networks", "timeout"],
)
async def test_configuration_reaches_the_http01_validator(
    raw_serve: RawServe, settings: dict[str, str], expected: str
):
    """default_validators passes [validation] allowed_networks and timeout to http-01."""
    handler, connections = silent_counting()
    port = await raw_serve(handler)
    config = load_config(
        None, {"validation.hosts": {NAME: "127.0.0.1"}, "validation.http01_port": port, **settings}
    )
    result = await check(default_validators(config)["http-01"])
    assert result.problem is not None
    assert result.problem.detail.endswith(expected)
    assert len(connections) == (0 if "validation.allowed_networks" in settings else 1)
