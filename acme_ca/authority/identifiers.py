"""The identifiers of a newOrder (RFC 8555 7.4, RFC 8738): parsed, normalised, checked.

Every refusal is collected: one rejectedIdentifier (or unsupportedIdentifier) problem
with a subproblem per bad identifier (RFC 8555 6.7.1), before any authorization
exists. Which challenges an identifier gets is decided here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from acme_ca.authority.policy import (
    check_dns_name,
    check_ip_address,
    normalize_dns_name,
    parse_ip_address,
)
from acme_ca.config import PolicyConfig
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed
from acme_ca.errors import PolicyError

MAX_IDENTIFIERS = 100

# RFC 8555 7.1.3 / 8.4: a wildcard can only be proven over DNS; RFC 8738 7: an IP
# address cannot be proven with dns-01.
_CHALLENGES_FOR = {
    "wildcard": ("dns-01",),
    "ip": ("http-01", "tls-alpn-01"),
    "dns": ("http-01", "dns-01", "tls-alpn-01"),
}


def authorization_identifier(identifier: Identifier) -> tuple[Identifier, bool]:
    """The identifier an authorization carries, and its wildcard flag (RFC 8555 7.1.4):
    an order for *.example.com is authorized by example.com with wildcard true."""
    if identifier.type == "dns" and identifier.value.startswith("*."):
        return Identifier("dns", identifier.value[2:]), True
    return identifier, False


def challenge_types(identifier: Identifier, available: Sequence[str]) -> tuple[str, ...]:
    _, wildcard = authorization_identifier(identifier)
    kind = "wildcard" if wildcard else identifier.type
    return tuple(t for t in _CHALLENGES_FOR[kind] if t in available)


def parse_identifiers(raw: Any, policy: PolicyConfig,
                      available: Sequence[str] = ("http-01",)) -> tuple[Identifier, ...]:
    if not isinstance(raw, list) or not raw:
        raise malformed("identifiers must be a non-empty list")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeProblem(ProblemType.REJECTED_IDENTIFIER,
                          f"an order may name at most {MAX_IDENTIFIERS} identifiers")
    identifiers: list[Identifier] = []
    problems: list[AcmeProblem] = []
    for item in raw:
        if (not isinstance(item, dict) or not isinstance(item.get("type"), str)
                or not isinstance(item.get("value"), str)):
            raise malformed("each identifier must be an object with string type and value")
        try:
            identifier = _check(item["type"], item["value"], policy)
            if not challenge_types(identifier, available):
                raise PolicyError(f"no enabled challenge type can prove {identifier.value}")
        except PolicyError as exc:
            problems.append(AcmeProblem(ProblemType.REJECTED_IDENTIFIER, str(exc),
                                        identifier=Identifier(item["type"], item["value"])))
        except _Unsupported as exc:
            problems.append(AcmeProblem(ProblemType.UNSUPPORTED_IDENTIFIER, str(exc),
                                        identifier=Identifier(item["type"], item["value"])))
        else:
            identifiers.append(identifier)
    if problems:
        raise combined(problems)
    return tuple(dict.fromkeys(identifiers))


def combined(problems: Sequence[AcmeProblem]) -> AcmeProblem:
    """One problem for several refused identifiers, each kept as a subproblem."""
    if len(problems) == 1:
        only = problems[0]
        return AcmeProblem(only.type, only.detail, identifier=only.identifier,
                           subproblems=problems)
    kinds = {p.type for p in problems}
    kind = kinds.pop() if len(kinds) == 1 else ProblemType.REJECTED_IDENTIFIER
    return AcmeProblem(kind, f"{len(problems)} identifiers were refused", subproblems=problems)


class _Unsupported(Exception):
    pass


def _check(kind: str, value: str, policy: PolicyConfig) -> Identifier:
    if kind == "dns":
        name = normalize_dns_name(value.strip())
        check_dns_name(name, policy.allowed_domains, policy.denied_domains)
        return Identifier("dns", name)
    if kind == "ip":
        address = parse_ip_address(value.strip())
        check_ip_address(address, policy.allowed_ip_networks)
        return Identifier("ip", str(address))
    raise _Unsupported(f"identifier type {kind!r} is not supported (dns and ip are)")
