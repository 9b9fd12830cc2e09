"""Identifier and validity policy: pure functions, table-tested.

A DNS name is first normalised (lowercase; U-labels converted to A-labels with IDNA
2008, A-labels checked to decode) and must then be syntactically valid (RFC 1035
lengths, LDH labels, no empty label, no trailing dot, a wildcard only as the whole
left-most label, at least two labels) and equal to or under one of the allowed
suffixes and not under a denied one. A wildcard is refused when a denied domain lies
at or below its base: *.example.com is valid for secret.example.com (RFC 6125 6.4.3).
The rule is deliberately wider than "one label below the base" (a denied
a.secret.example.com refuses it too): simple, and never too narrow. IP addresses are
refused unless an allowed network holds them, and IPv4-mapped IPv6 addresses always.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import idna

from acme_ca.config_values import at_or_under, at_or_under_any
from acme_ca.errors import PolicyError

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
MAX_NAME_LENGTH = 253

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalize_dns_name(value: str) -> str:
    """Lowercase, IDNA A-labels; PolicyError for what no normalisation can mend."""
    if value.endswith("."):
        raise PolicyError(f"{value!r} ends in a dot: give the name without it")
    labels = value.lower().split(".")
    out = []
    for label in labels:
        if label.isascii():
            if label.startswith("xn--"):
                _check_a_label(label, value)
            out.append(label)
            continue
        try:
            out.append(idna.encode(label, uts46=True).decode("ascii"))
        except idna.IDNAError as exc:
            raise PolicyError(f"{value!r} is not a valid internationalised name: {exc}") from None
    return ".".join(out)


def _check_a_label(label: str, name: str) -> None:
    try:
        idna.decode(label)
    except idna.IDNAError:
        raise PolicyError(f"{name!r}: {label!r} is not valid punycode (IDNA)") from None


def check_dns_name(name: str, allowed_domains: Sequence[str],
                   denied_domains: Sequence[str] = ()) -> None:
    """Raise PolicyError unless `name` (normalised) is a valid name inside policy."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise PolicyError(f"{name!r} is not a valid DNS name (1 to 253 characters)")
    labels = name.split(".")
    body = labels[1:] if labels[0] == "*" else labels
    if "*" in ".".join(body):
        raise PolicyError(f"{name!r}: a wildcard is allowed only as the whole left-most label")
    if "" in body:
        raise PolicyError(f"{name!r} has an empty label")
    if len(body) < 2:
        raise PolicyError(f"{name!r} is a bare top-level name")
    if not all(_LABEL.fullmatch(label) for label in body):
        raise PolicyError(f"{name!r} is not a valid DNS name (letters, digits and hyphens; "
                          "labels of at most 63 characters)")
    if _is_ip_address(name):
        raise PolicyError(f"{name} is an IP address: use an identifier of type ip")
    base = ".".join(body)
    if at_or_under_any(base, denied_domains):
        raise PolicyError(f"{name} is under a denied domain")
    if labels[0] == "*" and any(at_or_under(d, base) for d in denied_domains):
        raise PolicyError(f"{name} would also cover a denied domain")
    if not at_or_under_any(base, allowed_domains):
        raise PolicyError(
            f"{name} is outside policy (allowed: {', '.join(allowed_domains)} and subdomains)"
        )


def _is_ip_address(name: str) -> bool:
    """Does ``name`` parse as an IP address? Only digits and dots can (IPv4), or text
    with a colon (IPv6); anything else is not tried: a refused parse costs 12 us."""
    if ":" not in name and name.strip("0123456789."):
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_ip_address(value: str) -> IpAddress:
    """An IP identifier's value (RFC 8738 3): an address in its textual form.

    An IPv4-mapped IPv6 address (::ffff:0:0/96, RFC 4291 2.5.5.2) is refused, as Boulder
    refuses it: verifiers such as Go's take an iPAddress SAN ::ffff:10.0.0.1 to be
    10.0.0.1, so it would escape every IPv4 rule (allowed networks, the intermediate's
    IPv4 name constraints), which compare it as IPv6. An IPv6 zone ("fe80::1%eth0")
    names a link of this host, and no certificate can hold one.
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise PolicyError(f"{value!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        raise PolicyError(f"{value} is an IPv4-mapped IPv6 address (::ffff:0:0/96): ask for "
                          f"the IPv4 address {address.ipv4_mapped} itself")
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise PolicyError(f"{value!r} has an IPv6 zone; give the address without it")
    return address


def check_ip_address(address: IpAddress, allowed_networks: Sequence[IpNetwork]) -> None:
    if not any(address in network for network in allowed_networks):
        raise PolicyError(f"IP address {address} is outside policy "
                          "(not in [policy] allowed_ip_networks)")
