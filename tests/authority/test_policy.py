"""Identifier and validity policy: one row per rule."""

from __future__ import annotations

import ipaddress
import re

import pytest

from acme_ca.authority.policy import (
    check_dns_name,
    check_ip_address,
    normalize_dns_name,
    parse_ip_address,
)
from acme_ca.errors import PolicyError

ALLOWED = ("bluerobin.local", "data-layer")


def name_of_length(length: int, suffix: str = ".bluerobin.local") -> str:
    """A valid name of exactly `length` characters: 63-character labels, then the suffix."""
    room = length - len(suffix)
    labels = []
    while room > 0:
        size = min(63, room) if room != 64 else 62  # never leave a lone dot
        labels.append("a" * size)
        room -= size + 1
    name = ".".join(labels) + suffix
    assert len(name) == length
    return name


@pytest.mark.parametrize(
    "name",
    [
        "bluerobin.local",  # the suffix itself
        "postgres.bluerobin.local",  # a subdomain
        "a.b.c.bluerobin.local",  # any depth
        "*.bluerobin.local",  # a wildcard as the whole left-most label
        "*.nats.bluerobin.local",
        "x-1.bluerobin.local",  # inner hyphen, digits
        "0.bluerobin.local",
        "10.0.0.5.bluerobin.local",  # an address's digits, then a name: no IP address
        "postgres.data-layer",  # a second allowed suffix
        "a" * 63 + ".bluerobin.local",  # the longest label
        name_of_length(253),  # the longest name
    ],
)
def test_allowed_names(name: str) -> None:
    check_dns_name(name, ALLOWED)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("www.example.com", "outside policy"),
        ("evilbluerobin.local", "outside policy"),  # a suffix match must end at a dot
        ("bluerobin.local.example.com", "outside policy"),
        ("local", "bare top-level name"),  # a bare TLD
        ("*.local", "bare top-level name"),
        ("www.*.bluerobin.local", "wildcard is allowed only as the whole left-most label"),
        ("*www.bluerobin.local", "wildcard is allowed only as the whole left-most label"),
        ("w*.bluerobin.local", "wildcard is allowed only as the whole left-most label"),
        ("*.*.bluerobin.local", "wildcard is allowed only as the whole left-most label"),
        ("a" * 64 + ".bluerobin.local", "is not a valid DNS name"),  # label > 63
        (name_of_length(254), "1 to 253 characters"),  # name > 253
        ("", "1 to 253 characters"),
        ("a..bluerobin.local", "empty label"),
        (".bluerobin.local", "empty label"),
        ("www.bluerobin.local.", "empty label"),  # normalize_dns_name refuses it first
        ("10.0.0.5", "is an IP address"),
        ("0.0.0.0", "is an IP address"),  # noqa: S104 - a name, not a bind address
        ("-www.bluerobin.local", "is not a valid DNS name"),  # leading hyphen
        ("www-.bluerobin.local", "is not a valid DNS name"),  # trailing hyphen
        ("_acme.bluerobin.local", "is not a valid DNS name"),
        ("www bluerobin.local", "is not a valid DNS name"),
        ("WWW.bluerobin.local", "is not a valid DNS name"),  # callers lowercase first
    ],
)
def test_refused_names(name: str, fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment):
        check_dns_name(name, ALLOWED)


def test_the_refusal_names_the_allowed_domains() -> None:
    with pytest.raises(PolicyError, match=r"allowed: bluerobin\.local, data-layer and subdomains"):
        check_dns_name("www.example.com", ALLOWED)


def test_ip_addresses_are_refused_without_networks() -> None:
    with pytest.raises(PolicyError, match=r"IP address 10\.0\.0\.5 is outside policy"):
        check_ip_address(ipaddress.ip_address("10.0.0.5"), ())


def test_ip_addresses_inside_an_allowed_network() -> None:
    networks = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64"))
    check_ip_address(ipaddress.ip_address("10.0.0.5"), networks)
    check_ip_address(ipaddress.ip_address("fd00::5"), networks)
    for outside in ("10.0.1.5", "fd01::5"):
        with pytest.raises(PolicyError):
            check_ip_address(ipaddress.ip_address(outside), networks)


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("WWW.BlueRobin.Local", "www.bluerobin.local"),  # lowercase
        ("bücher.bluerobin.local", "xn--bcher-kva.bluerobin.local"),  # U-label -> A-label
        ("xn--bcher-kva.bluerobin.local", "xn--bcher-kva.bluerobin.local"),  # kept
        ("*.Web.bluerobin.local", "*.web.bluerobin.local"),
    ],
)
def test_names_are_normalised(given: str, normal: str) -> None:
    """RFC 8555 7.1.4: dns identifiers are ASCII (A-labels), case-insensitive."""
    assert normalize_dns_name(given) == normal
    check_dns_name(normal, ALLOWED)


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("www.bluerobin.local.", "ends in a dot"),
        ("xn--zz.bluerobin.local", "not valid punycode"),  # an A-label that does not decode
        ("a\u200db.bluerobin.local", "not a valid internationalised name"),  # invalid U-label
    ],
)
def test_names_that_cannot_be_normalised(given: str, fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment):
        normalize_dns_name(given)


def test_denied_domains_win_over_allowed() -> None:
    """[policy] denied_domains: never issued, even below an allowed suffix."""
    check_dns_name("web.bluerobin.local", ALLOWED, ("secret.bluerobin.local",))
    for name in ("secret.bluerobin.local", "db.secret.bluerobin.local",
                 "*.secret.bluerobin.local"):
        with pytest.raises(PolicyError, match="denied domain"):
            check_dns_name(name, ALLOWED, ("secret.bluerobin.local",))


@pytest.mark.parametrize("value", ["::ffff:10.0.0.1", "::FFFF:a00:1", "::ffff:0:0"])
def test_ipv4_mapped_ipv6_addresses_are_refused(value: str) -> None:
    """RFC 4291 2.5.5.2: ::ffff:0:0/96 embeds an IPv4 address, and verifiers (Go's
    net.IP.Equal) take such an iPAddress SAN as that IPv4 address, outside any IPv4
    network policy or name constraint. Refused as Boulder refuses it; the IPv4 form
    is the identifier to ask for."""
    with pytest.raises(PolicyError, match=r"IPv4-mapped IPv6 address.*ask for the IPv4"):
        parse_ip_address(value)
    assert str(parse_ip_address("::fffe:a00:1")) == "::fffe:a00:1"  # outside the /96


@pytest.mark.parametrize(("name", "denied", "refused"), [
    ("*.bluerobin.local", "secret.bluerobin.local", True),  # covers secret.bluerobin.local
    ("*.bluerobin.local", "db.secret.bluerobin.local", True),  # at or below the base
    ("*.bluerobin.local", "bluerobin.local", True),  # the base itself is denied
    ("*.web.bluerobin.local", "secret.bluerobin.local", False),  # another branch
    ("web.bluerobin.local", "x.web.bluerobin.local", False),  # no wildcard: the name only
])
def test_a_wildcard_is_refused_when_a_denied_domain_lies_under_its_base(
        name: str, denied: str, refused: bool) -> None:
    """RFC 6125 6.4.3: *.bluerobin.local is valid for secret.bluerobin.local, so it is
    refused when any denied domain is at or below its base (the rule is kept simple and
    conservative: a denied domain two labels down refuses it too)."""
    if refused:
        with pytest.raises(PolicyError, match=rf"^{re.escape(name)} .*a denied domain"):
            check_dns_name(name, ALLOWED, (denied,))
    else:
        check_dns_name(name, ALLOWED, (denied,))
