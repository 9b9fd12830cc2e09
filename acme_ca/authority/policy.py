"""Identifier and validity policy: pure functions, table-tested.

A name is allowed when it is a syntactically valid DNS name (RFC 1035 lengths,
LDH labels, a wildcard only as the whole left-most label) equal to or under one of
the configured suffixes. IP addresses are refused unless a network allows them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import timedelta

from acme_ca.errors import PolicyError

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
MAX_NAME_LENGTH = 253

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_dns_name(name: str, allowed_domains: Sequence[str]) -> None:
    """Raise PolicyError unless `name` (already lowercased) is a valid name inside policy."""
    if not name or len(name) > MAX_NAME_LENGTH:
        raise PolicyError(f"{name!r} is not a valid DNS name (1 to 253 characters)")
    labels = name.split(".")
    body = labels[1:] if labels[0] == "*" else labels
    if "*" in name and labels[0] != "*":
        raise PolicyError(f"{name!r}: a wildcard is allowed only as the whole left-most label")
    if len(body) < 2 or not all(_LABEL.fullmatch(label) for label in body):
        raise PolicyError(f"{name!r} is not a valid DNS name")
    base = ".".join(body)
    if not any(base == d or base.endswith("." + d) for d in allowed_domains):
        raise PolicyError(
            f"{name} is outside policy (allowed: {', '.join(allowed_domains)} and subdomains)"
        )


def check_ip_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, allowed_networks: Sequence[IpNetwork]
) -> None:
    if not any(address in network for network in allowed_networks):
        raise PolicyError(f"IP address {address} is outside policy (no allowed network holds it)")


def check_validity(validity: timedelta, max_validity: timedelta) -> None:
    if validity > max_validity:
        raise PolicyError(f"a validity of {validity} exceeds policy.max_validity ({max_validity})")
