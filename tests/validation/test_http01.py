"""http-01 validation (RFC 8555 8.3) against real responders on 127.0.0.1.

Responders are aiohttp test servers, or raw asyncio servers for the misbehaving ones.
The validator's first-request port is the responder's port; redirect ports are moved
to free test ports through the constructor. Hostile responders (silent, trickling,
huge, redirect loops, metadata addresses, rebinding DNS) are in test_hostile.py; both
use the helpers of http01_helpers.py and the responder fixtures of conftest.py.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dns.rcode
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import ProblemType
from acme_ca.validation import Resolver, key_authorization
from tests.validation.conftest import StartDns  # the fake_dns fixture lives there
from tests.validation.http01_helpers import (
    IDENT,
    KEY_AUTH,
    NAME,
    PATH,
    TOKEN,
    RawServe,
    Serve,
    check,
    free_port,
    redirect,
    reply,
    validator,
)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_key_authorization_is_token_dot_thumbprint():
    """RFC 8555 8.1: keyAuthorization = token || '.' || base64url(JWK_Thumbprint)."""
    assert key_authorization("tok-en_1", "thumb") == "tok-en_1.thumb"


@pytest.mark.parametrize("suffix", ["", "\n", "\r\n", " \t\n "])
async def test_correct_response_is_valid(serve: Serve, suffix: str):
    """RFC 8555 8.3: the body is the key authorization; trailing whitespace is ignored."""
    port = await serve({PATH: reply(KEY_AUTH + suffix)})
    result = await check(validator(port))
    assert result.valid, result.problem
    assert result.problem is None
    assert [r["status"] for r in result.records] == [200]


async def test_leading_whitespace_is_not_ignored(serve: Serve):
    """RFC 8555 8.3 allows only trailing whitespace."""
    port = await serve({PATH: reply("\n" + KEY_AUTH)})
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.INCORRECT_RESPONSE


async def test_wrong_body_is_incorrect_response(serve: Serve):
    """RFC 8555 8.3: a different body fails; the detail shows the expected text only,
    never what was received (RFC 8555 10.2; test_no_probe.py)."""
    port = await serve({PATH: reply("not-the-key-authorization" * 10)})
    result = await check(validator(port))
    assert not result.valid
    assert result.problem is not None
    assert result.problem.type is ProblemType.INCORRECT_RESPONSE
    detail = result.problem.detail
    assert repr(KEY_AUTH[:64]) + "..." in detail
    assert "not-the-key" not in detail


async def test_http_404_is_unauthorized(serve: Serve):
    """RFC 8555 8.3: only 200 carries a key authorization; 404 names the URL and status."""
    port = await serve({"/elsewhere": reply()})
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail == f"fetching http://{NAME}:{port}{PATH} returned 404"


async def test_server_error_is_unauthorized(serve: Serve):
    port = await serve({PATH: reply(status=500)})
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert "returned 500" in result.problem.detail


async def test_connection_refused(serve: Serve):
    """Nobody listening: a connection problem naming the name and port; the address
    tried is in the record only (test_no_probe)."""
    port = free_port()
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == f"connecting to {NAME}:{port} failed: connection refused"
    assert result.records[0]["addresses_tried"] == ["127.0.0.1"]
    assert result.records[0]["address_used"] is None


async def test_read_timeout(raw_serve: RawServe):
    """No byte within read_timeout: a connection problem that says so."""

    async def silent(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.read()

    port = await raw_serve(silent)
    result = await check(validator(port, read_timeout=0.2, total_timeout=5))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert "no data for 0.2s" in result.problem.detail


async def test_server_closing_without_answer(raw_serve: RawServe):
    async def hang_up(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    port = await raw_serve(hang_up)
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert "closed the connection" in result.problem.detail


async def test_redirect_to_another_path_is_followed(serve: Serve):
    """RFC 8555 8.3 lets the server follow redirects; each hop is recorded."""
    port = await serve({PATH: redirect("/real/answer"), "/real/answer": reply()})
    result = await check(validator(port))
    assert result.valid, result.problem
    assert [r["status"] for r in result.records] == [302, 200]
    assert result.records[0]["location"] == "/real/answer"
    assert result.records[1]["url"] == f"http://{NAME}:{port}/real/answer"


async def test_redirect_to_another_name_is_resolved_again(
    serve: Serve,
    fake_dns: StartDns,
):
    """Each hop is resolved again (here through the hosts table) and sent its own Host."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.Response(text=KEY_AUTH)

    other = await serve({"/x": answer})
    port = await serve({PATH: redirect(f"http://other.bluerobin.local:{other}/x")})
    hosts = {NAME: "127.0.0.1", "other.bluerobin.local": "127.0.0.1"}
    result = await check(validator(port, hosts, http_redirect_port=other))
    assert result.valid, result.problem
    assert seen == [f"other.bluerobin.local:{other}"]
    assert [(r["hostname"], r["port"]) for r in result.records] == [
        (NAME, port),
        ("other.bluerobin.local", other),
    ]

    _, address = await fake_dns()  # NXDOMAIN for every name
    missing = await serve({PATH: redirect(f"http://missing.bluerobin.local:{other}/x")})
    result = await check(validator(missing, hosts, dns=[address], http_redirect_port=other))
    assert result.problem is not None
    assert result.problem.type is ProblemType.DNS
    assert result.problem.detail == (  # the redirect's host is the target's: not repeated
        f"the host of the target of redirect 1 from http://{NAME}:{missing}{PATH} "
        "could not be resolved"
    )


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("ftp://web.bluerobin.local/file", "only http and https"),
        ("http://web.bluerobin.local:{free}/x", "its port is not one of the ports followed"),
        ("https://web.bluerobin.local:{free}/x", "its port is not one of the ports"),
        ("http://[bad/x", "not a valid URL"),
    ],
)
async def test_redirect_to_disallowed_target_fails(serve: Serve, location: str, words: str):
    """Redirects go only to http/https on the allowed ports (Boulder: 80 and 443)."""
    free = free_port()
    port = await serve({PATH: redirect(location.format(free=free))})
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert "is not allowed" in result.problem.detail
    assert words.format(free=free) in result.problem.detail
    assert len(result.records) == 1


async def test_redirect_default_ports_are_80_and_443(serve: Serve):
    """With the defaults, a redirect to port 8080 is refused before any connection."""
    port = await serve({PATH: redirect(f"http://{NAME}:8080/x")})
    result = await check(validator(port))
    assert result.problem is not None
    assert f"its port is not one of the ports followed (80, 443, {port})" in (
        result.problem.detail
    )


async def test_redirect_without_location_is_unauthorized(serve: Serve):
    async def bare(_: web.Request) -> web.Response:
        return web.Response(status=302)

    port = await serve({PATH: bare})
    result = await check(validator(port))
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert "without a Location header" in result.problem.detail


def self_signed(tmp_path: Path, name: str) -> ssl.SSLContext:
    """A server context with a self-signed certificate no one trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[tuple[int, list[str | None], list[str]]]:
    """An https server with an untrusted certificate: (port, SNI names seen, Hosts seen)."""
    snis: list[str | None] = []
    hosts: list[str] = []
    context = self_signed(tmp_path, "untrusted.example")
    context.sni_callback = lambda _sock, name, _ctx: snis.append(name)

    async def answer(request: web.Request) -> web.Response:
        hosts.append(request.headers["Host"])
        return web.Response(text=KEY_AUTH)

    app = web.Application()
    app.router.add_get("/secure", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    await web.SockSite(runner, sock, ssl_context=context).start()
    try:
        yield port, snis, hosts
    finally:
        await runner.cleanup()


async def test_redirect_to_https_uses_sni_and_accepts_any_certificate(
    serve: Serve, https_server: tuple[int, list[str | None], list[str]]
):
    """Boulder accepts any certificate on an http-01 redirect to https; SNI is the name."""
    tls_port, snis, hosts = https_server
    port = await serve({PATH: redirect(f"https://{NAME}:{tls_port}/secure")})
    result = await check(validator(port, https_port=tls_port))
    assert result.valid, result.problem
    assert snis == [NAME]
    assert hosts == [f"{NAME}:{tls_port}"]
    assert result.records[1]["url"] == f"https://{NAME}:{tls_port}/secure"
    assert result.records[1]["address_used"] == "127.0.0.1"


async def test_host_header_is_the_name(serve: Serve):
    """RFC 8555 8.3: the request goes to the resolved address with Host: the identifier."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.Response(text=KEY_AUTH)

    port = await serve({PATH: answer})
    result = await check(validator(port))
    assert result.valid, result.problem
    assert seen == [f"{NAME}:{port}"]


async def test_record_notes_the_address_connected_to(serve: Serve):
    """What an SSRF allowlist would check: the name, port and address actually used."""
    port = await serve({PATH: reply()})
    result = await check(validator(port))
    (record,) = result.records
    assert record == {
        "url": f"http://{NAME}:{port}{PATH}",
        "hostname": NAME,
        "port": port,
        "addresses_resolved": ["127.0.0.1"],
        "addresses_refused": [],
        "addresses_tried": ["127.0.0.1"],
        "address_used": "127.0.0.1",
        "status": 200,
    }


async def test_ip_identifier_connects_to_the_address(serve: Serve):
    """RFC 8738 3: an IP identifier is fetched from the address, Host is the address."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.Response(text=KEY_AUTH)

    port = await serve({PATH: answer})
    result = await check(validator(port, hosts={}), Identifier("ip", "127.0.0.1"))
    assert result.valid, result.problem
    assert seen == [f"127.0.0.1:{port}"]
    assert result.records[0]["address_used"] == "127.0.0.1"


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_identifier_host_header_is_bracketed(raw_serve: RawServe):
    """RFC 8738 3 with IPv6: Host: [::1]:port."""
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        body = KEY_AUTH.encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "::1", 0)
    try:
        port = int(server.sockets[0].getsockname()[1])
        result = await check(validator(port, hosts={}), Identifier("ip", "::1"))
    finally:
        server.close()
        await server.wait_closed()
    assert result.valid, result.problem
    assert f"\r\nHost: [::1]:{port}\r\n".encode() in seen[0]


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
async def test_falls_back_to_the_other_address_family(serve: Serve):
    """Like Boulder: when the first address refuses, the first of the other family is tried."""
    port = await serve({PATH: reply()})

    class TwoFamilies(Resolver):
        async def resolve(self, name: str) -> list[Any]:
            return [*(await Resolver({}, []).resolve("::1")), *(await super().resolve(name))]

    v = validator(port, resolver=TwoFamilies({NAME: "127.0.0.1"}, []))
    result = await check(v)
    assert result.valid, result.problem
    assert result.records[0]["addresses_tried"] == ["::1", "127.0.0.1"]
    assert result.records[0]["address_used"] == "127.0.0.1"


async def test_hosts_table_is_used_before_dns(serve: Serve, fake_dns: StartDns):
    """[validation] hosts answers; the configured DNS server is never asked."""
    server, address = await fake_dns(answers={NAME: ["10.255.255.1"]})
    port = await serve({PATH: reply()})
    result = await check(validator(port, dns=[address]))
    assert result.valid, result.problem
    assert server.queries == []


async def test_name_from_configured_dns(serve: Serve, fake_dns: StartDns):
    _, address = await fake_dns(answers={NAME: ["127.0.0.1"]})
    port = await serve({PATH: reply()})
    result = await check(validator(port, hosts={}, dns=[address]))
    assert result.valid, result.problem


@pytest.mark.parametrize("rcode", [dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL])
async def test_dns_failure_is_a_dns_problem(fake_dns: StartDns, rcode: dns.rcode.Rcode):
    """RFC 8555 6.7: a name that does not resolve is a dns problem, not a connection one."""
    _, address = await fake_dns(rcodes={NAME: rcode})
    result = await check(validator(free_port(), hosts={}, dns=[address]))
    assert result.problem is not None
    assert result.problem.type is ProblemType.DNS
    assert NAME in result.problem.detail
    assert dns.rcode.to_text(rcode) in result.problem.detail


@pytest.mark.parametrize(
    ("ident", "token", "kind"),
    [
        (Identifier("dns", "*.bluerobin.local"), TOKEN, ProblemType.MALFORMED),
        (IDENT, "../../etc/passwd", ProblemType.MALFORMED),
        (Identifier("email", "a@b.c"), TOKEN, ProblemType.UNSUPPORTED_IDENTIFIER),
        (Identifier("ip", "not-an-ip"), TOKEN, ProblemType.MALFORMED),
    ],
)
async def test_what_http01_cannot_validate(ident: Identifier, token: str, kind: ProblemType):
    """Wildcards need dns-01 (RFC 8555 7.1.3); tokens are base64url (8.1)."""
    result = await validator(free_port()).validate(ident, token, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is kind
    assert result.records == ()
