"""Validation is not a probe of the internal network (RFC 8555 10.2 "Request forgery").

Anyone who can register an account chooses what validation connects to. So a failed
validation says *what* failed (a status code, refused, timed out, wrong length, does
not match, too large, a redirect to a refused address, a TLS error) and never repeats
what the target sent: no body, no Location, no header, no certificate contents, no TXT
value, no bytes of a response that is not HTTP. Nor what DNS said: no CNAME target, no
CAA value, no address a name resolved to. Every test here serves ``SECRET`` and
asserts that it appears nowhere in the problem document (subproblems included).

Where validation may connect is tested in test_targets.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress

import dns.rcode
import pytest
from aiohttp import web
from cryptography import x509

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import ProblemType
from acme_ca.validation.base import ValidationResult
from acme_ca.validation.caa import CaaChecker
from acme_ca.validation.dns import DnsClient
from acme_ca.validation.dns01 import Dns01Validator
from acme_ca.validation.network import AddressPolicy
from acme_ca.validation.resolver import Resolver
from acme_ca.validation.tlsalpn01 import TlsAlpn01Validator
from tests.validation.conftest import StartDns
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
from tests.validation.tlsalpn01_helpers import (
    Start,
    challenge_cert,
)
from tests.validation.tlsalpn01_helpers import validator as tls_validator

SECRET = "s3cret-7f2b9c"  # stands for whatever an internal service would answer
URL = f"http://{NAME}:{{port}}{PATH}"


def assert_not_echoed(result: ValidationResult, *secrets: str) -> str:
    """The problem (with its subproblems, as it goes on the wire) repeats none of
    ``secrets``; returns the detail."""
    assert result.problem is not None
    document = result.problem.dumps()
    for secret in (SECRET, *secrets):
        assert secret not in document, document
    return result.problem.detail


# --- http-01: bodies, Locations, headers, non-HTTP answers --------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (SECRET * 20, "the body has the wrong length"),
        (SECRET, "the body has the wrong length"),
        ((SECRET * 20)[: len(KEY_AUTH)], "the body does not match"),
        (b"", "the body is empty"),
    ],
    ids=["longer", "shorter", "same-length", "empty"],
)
async def test_a_wrong_body_is_never_echoed(serve: Serve, body: str | bytes, reason: str):
    """RFC 8555 8.3: the body must be the key authorization; the problem says how it
    differs (length or content) and shows only what was expected."""
    port = await serve({PATH: reply(body)})
    result = await check(validator(port))
    detail = assert_not_echoed(result, SECRET[:6])
    assert result.problem is not None
    assert result.problem.type is ProblemType.INCORRECT_RESPONSE
    assert detail.startswith(
        f"the response from {URL.format(port=port)} is not the key authorization: {reason}"
    )


async def test_a_wrong_body_after_a_redirect_names_neither_body_nor_location(serve: Serve):
    """The URL a redirect led to is the target's Location: the problem names the
    challenge URL and the redirect's number instead."""
    port = await serve({PATH: redirect(f"/{SECRET}"), f"/{SECRET}": reply(SECRET)})
    result = await check(validator(port))
    detail = assert_not_echoed(result)
    assert detail.startswith(
        f"the response from the target of redirect 1 from {URL.format(port=port)} "
        "is not the key authorization: the body has the wrong length"
    )


@pytest.mark.parametrize(
    ("location", "words"),
    [
        (f"ftp://{SECRET}.bluerobin.local/{SECRET}", "only http and https URLs are followed"),
        (f"http://{NAME}:{{free}}/{SECRET}", "its port is not one of the ports followed"),
        (f"http://[{SECRET}/x", "not a valid URL"),
        (f"/{SECRET}", "returned 404"),
        (f"http://169.254.169.254/{SECRET}", "redirect 1 from"),
        (f"http://[::ffff:169.254.169.254]/{SECRET}", "validation never connects there"),
        (f"http://2852039166/{SECRET}", "is always refused"),
        (f"http://{SECRET}.bluerobin.local:{{port}}/x", "could not be resolved"),
        (f"http://127.0.0.1:{{free}}/{SECRET}", "connection refused"),
    ],
    ids=[
        "scheme", "port", "invalid", "404", "metadata", "v4-mapped", "decimal", "nxdomain",
        "refused",
    ],
)
async def test_a_redirect_location_is_never_echoed(
    serve: Serve, fake_dns: StartDns, location: str, words: str
):
    """A Location chosen by an internal service (a login URL with a token, a host name)
    is never repeated, nor the address its host resolves to, nor the port it names."""
    free = free_port()
    holder: dict[str, int] = {}

    async def moved(_: web.Request) -> web.Response:
        target = location.format(free=free, port=holder["port"])
        return web.Response(status=302, headers={"Location": target})

    port = holder["port"] = await serve({PATH: moved})
    _, dns_address = await fake_dns()  # NXDOMAIN for every name
    # the decimal form needs the system resolver (which maps it to an address)
    dns = [] if location.startswith("http://2852039166") else [dns_address]
    redirect_port = free if "{free}" in location and "127.0.0.1" in location else port
    result = await check(
        validator(port, {NAME: "127.0.0.1"}, dns=dns, http_redirect_port=redirect_port)
    )
    detail = assert_not_echoed(result, "169.254.169.254", "2852039166", str(free))
    assert words in detail


async def test_a_redirect_loop_names_no_location(serve: Serve):
    """Too many redirects: the problem says so, with the challenge URL only."""
    port = await serve({PATH: redirect(f"/{SECRET}"), f"/{SECRET}": redirect(PATH)})
    result = await check(validator(port, max_redirects=3))
    assert_not_echoed(result)
    assert result.problem is not None
    assert result.problem.detail == (
        f"too many redirects: more than 3, from {URL.format(port=port)}"
    )


async def test_a_timeout_after_a_redirect_names_no_location(raw_serve: RawServe):
    """The total deadline names the challenge URL, not the redirect's."""

    async def moved_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        request = await reader.readuntil(b"\r\n\r\n")
        if request.startswith(f"GET {PATH} ".encode()):
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: /{SECRET}\r\n"
                         "Content-Length: 0\r\n\r\n".encode())
            await writer.drain()
        await reader.read()  # the redirected request, on a new connection: never answered

    port = await raw_serve(moved_then_silent)
    result = await check(validator(port, total_timeout=0.5))
    detail = assert_not_echoed(result)
    assert detail == (
        f"fetching {URL.format(port=port)} for {NAME} timed out after 0.5s (total time limit)"
    )


@pytest.mark.parametrize(
    "answer",
    [
        f"SSH-2.0-OpenSSH_{SECRET}\r\n".encode(),
        f"HTTP/1.1 2x0 {SECRET}\r\n\r\n".encode(),
        f"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Bad {SECRET}\r\n\r\nabcde".encode(),
    ],
    ids=["ssh-banner", "status-line", "header"],
)
async def test_an_answer_that_is_not_http_is_never_echoed(raw_serve: RawServe, answer: bytes):
    """A service that is not HTTP (or breaks HTTP) on a port validation reaches: the
    problem says the response was not valid HTTP, never what it was."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()

    port = await raw_serve(handler)
    result = await check(validator(port))
    detail = assert_not_echoed(result)
    assert detail == (
        f"fetching {URL.format(port=port)} failed: "
        "the response is not valid HTTP"
    )


async def test_error_statuses_and_their_headers_are_not_echoed(serve: Serve):
    """A 403 with a body and headers: the status code alone is reported."""

    async def forbidden(_: web.Request) -> web.Response:
        return web.Response(status=403, text=SECRET, headers={"X-Secret": SECRET})

    port = await serve({PATH: forbidden})
    result = await check(validator(port))
    assert assert_not_echoed(result) == f"fetching {URL.format(port=port)} returned 403"


# --- tls-alpn-01 and dns-01 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sans", "words"),
    [
        ([x509.DNSName(f"{SECRET}.corp.example")], "its subjectAltName entry is not"),
        (
            [x509.DNSName(NAME), x509.DNSName(f"{SECRET}.corp.example")],
            "its subjectAltName has 2 entries, not exactly one",
        ),
    ],
    ids=["other-name", "two-names"],
)
async def test_a_tls_certificate_is_never_echoed(
    tls_server: Start, sans: list[x509.GeneralName], words: str
):
    """RFC 8737 3: a certificate from an internal TLS service names internal hosts; the
    problem says the certificate is wrong, not what it holds."""
    server = await tls_server(challenge_cert(sans))
    result = await tls_validator(server.port).validate(
        Identifier("dns", "tls.bluerobin.local"), TOKEN, KEY_AUTH
    )
    assert words in assert_not_echoed(result)


async def test_a_wrong_acme_identifier_digest_is_never_echoed(tls_server: Start):
    other = hashlib.sha256(SECRET.encode()).digest()
    server = await tls_server(challenge_cert(acme_value=b"\x04\x20" + other))
    result = await tls_validator(server.port).validate(
        Identifier("dns", "tls.bluerobin.local"), TOKEN, KEY_AUTH
    )
    detail = assert_not_echoed(result, other.hex())
    assert "does not hold the SHA-256 digest of the key authorization" in detail


async def test_dns01_txt_values_are_never_echoed(fake_dns: StartDns):
    """RFC 8555 8.4: a CNAME may point the challenge name anywhere the resolvers see;
    the TXT values found there are counted, never shown, nor the name they are at."""
    challenge = f"_acme-challenge.{NAME}"
    records = {
        challenge: [f"CNAME vault.{INTERNAL}."],
        f"vault.{INTERNAL}": [f'TXT "{SECRET}"', 'TXT "x"'],
    }
    _, address = await fake_dns(records=records, chase=True)
    result = await Dns01Validator(DnsClient([address], None, 2)).validate(IDENT, TOKEN, KEY_AUTH)
    detail = assert_not_echoed(result, INTERNAL)
    assert detail.startswith(f"found 2 TXT records at {challenge} (after 1 CNAME) ")


# --- DNS data: CNAME targets, CAA values, the addresses a name resolves to -----------------

INTERNAL = f"{SECRET}.corp.example"  # an internal name, reached through a CNAME
CHALLENGE = f"_acme-challenge.{NAME}"
_CHAIN = {CHALLENGE: [f"CNAME alias.{INTERNAL}."], f"alias.{INTERNAL}": [f"CNAME db01.{INTERNAL}."]}


@pytest.mark.parametrize(
    ("records", "options", "words"),
    [
        ({**_CHAIN, f"db01.{INTERNAL}": ['TXT "x"']}, {"chase": True},
         f"found 1 TXT record at {CHALLENGE} (after 2 CNAMEs)"),
        (_CHAIN, {"chase": True}, f"{CHALLENGE} (after 2 CNAMEs) does not exist (NXDOMAIN)"),
        ({**_CHAIN, f"db01.{INTERNAL}": ["A 10.0.0.1"]}, {"chase": True},
         f"no TXT record found at {CHALLENGE} (after 2 CNAMEs)"),
        ({**_CHAIN, f"db01.{INTERNAL}": [f"CNAME alias.{INTERNAL}."]}, {},
         f"the CNAME chain from {CHALLENGE} (TXT, at "),
        ({**_CHAIN, f"db01.{INTERNAL}": ['TXT "x"']},
         {"rcodes": {f"db01.{INTERNAL}": dns.rcode.SERVFAIL}},
         f"DNS error looking up TXT for {CHALLENGE} (after 2 CNAMEs): "),
        ({CHALLENGE: [f"CNAME a0.{INTERNAL}."]}
         | {f"a{i}.{INTERNAL}": [f"CNAME a{i + 1}.{INTERNAL}."] for i in range(10)}, {},
         "is longer than 8 CNAMEs"),
    ],
    ids=["mismatch", "nxdomain", "no-txt", "loop", "servfail", "too-long"],
)
async def test_cname_targets_are_never_echoed(
    fake_dns: StartDns, records: dict[str, list[str]], options: dict[str, object], words: str
):
    """RFC 8555 8.4 lets dns-01 follow CNAMEs; the targets are DNS data the client may
    not see (internal names): every problem names only the name asked for, and how
    many CNAMEs were followed."""
    _, address = await fake_dns(records=records, **options)
    result = await Dns01Validator(DnsClient([address], None, 2)).validate(IDENT, TOKEN, KEY_AUTH)
    assert words in assert_not_echoed(result, INTERNAL, "corp.example")


CA = "ca.bluerobin.local"


@pytest.mark.parametrize(
    ("entries", "wildcard", "refusal"),
    [
        ([f'0 issue "{CA}; accounturi=https://{INTERNAL}/acct/1"'], False,
         "does not authorise this account"),
        ([f'0 issue "{INTERNAL}"', f'0 issue "ca2.{INTERNAL}"'], False,
         "does not authorise this CA"),
        ([f'0 issue "{CA}; validationmethods=dns-01,{SECRET}"'], False,
         "does not authorise this validation method (http-01)"),
        ([f'0 issue "{SECRET} {INTERNAL}"'], False, "does not authorise this CA"),
        ([f'0 issuewild "{INTERNAL}"', f'0 issue "{CA}"'], True, "does not authorise this CA"),
        ([f'128 {SECRET.replace("-", "")} "{INTERNAL}"', f'0 issue "{CA}"'], False,
         "has a critical property this CA does not understand"),
    ],
    ids=["accounturi", "other-ca", "validationmethods", "malformed", "issuewild", "critical"],
)
async def test_caa_values_and_cname_targets_are_never_echoed(
    fake_dns: StartDns, entries: list[str], wildcard: bool, refusal: str
):
    """RFC 8659 3 follows CNAMEs and RFC 8657 adds parameters: a CAA refusal says what
    it refuses (this CA, this account, this validation method), never the record
    values (other CAs, account URLs, methods) or the CNAME target they were found at."""
    records = {NAME: [f"CNAME vault.{INTERNAL}."]}
    records[f"vault.{INTERNAL}"] = [f"CAA {e}" for e in entries]
    _, address = await fake_dns(records=records, chase=True)
    problem = await CaaChecker(DnsClient([address], None, 2), [CA]).check(
        IDENT, wildcard=wildcard, account_uri="https://ca.bluerobin.local/acme/acct/1",
        method="http-01",
    )
    detail = assert_not_echoed(ValidationResult(problem), INTERNAL, SECRET.replace("-", ""))
    kind = "issuewild" if wildcard else "CAA"
    assert detail == f"{'CAA ' if wildcard else ''}{kind} at {NAME} (after 1 CNAME) {refusal}"


async def test_a_failed_caa_lookup_names_no_cname_target(fake_dns: StartDns):
    records = {NAME: [f"CNAME vault.{INTERNAL}."], f"vault.{INTERNAL}": ['CAA 0 issue "x"']}
    _, address = await fake_dns(records=records, rcodes={f"vault.{INTERNAL}": dns.rcode.SERVFAIL})
    problem = await CaaChecker(DnsClient([address], None, 2), [CA]).check(
        IDENT, wildcard=False, account_uri="https://ca.bluerobin.local/acme/acct/1",
        method="http-01",
    )
    detail = assert_not_echoed(ValidationResult(problem), INTERNAL)
    assert detail.startswith(f"cannot check CAA for {NAME}: DNS error looking up CAA for {NAME} "
                             "(after 1 CNAME): ")


@pytest.mark.parametrize("allowed", [True, False], ids=["connection-refused", "refused-network"])
async def test_http01_names_no_address_a_name_resolved_to(fake_dns: StartDns, allowed: bool):
    """The address a name resolves to (through a CNAME: any internal name's address) is
    DNS data: the problem names the identifier, never the address; the record keeps it
    for the operator's log."""
    _, address = await fake_dns(
        records={NAME: [f"CNAME db01.{INTERNAL}."], f"db01.{INTERNAL}": ["A 127.0.0.9"]},
        chase=True,
    )
    network = "127.0.0.0/8" if allowed else "10.0.0.0/8"
    policy = AddressPolicy([ipaddress.ip_network(network)])
    port = free_port()
    result = await check(validator(port, {}, dns=[address], policy=policy))
    detail = assert_not_echoed(result, "127.0.0.9", INTERNAL)
    assert result.records[0]["addresses_resolved"] == ["127.0.0.9"]
    if allowed:
        assert detail == f"connecting to {NAME}:{port} failed: connection refused"
    else:
        assert detail == (f"{NAME} resolves to an address that is outside [validation] "
                          "allowed_networks: validation never connects there")


async def test_tls_alpn01_names_no_address_a_name_resolved_to(fake_dns: StartDns):
    _, address = await fake_dns(
        records={NAME: [f"CNAME db01.{INTERNAL}."], f"db01.{INTERNAL}": ["A 127.0.0.9"]},
        chase=True,
    )
    port = free_port()
    resolver = Resolver({}, [address])
    result = await TlsAlpn01Validator(resolver, port=port).validate(IDENT, TOKEN, KEY_AUTH)
    detail = assert_not_echoed(result, "127.0.0.9", INTERNAL)
    assert detail == f"connecting to {NAME}:{port} failed: connection refused"
