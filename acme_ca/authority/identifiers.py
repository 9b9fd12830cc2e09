"""The identifiers a certificate may name: one policy for ACME newOrder (RFC 8555 7.4,
RFC 8738) and for `acme-ca sign-csr`.

:func:`check_identifiers` normalises (type, value) pairs and applies, in order, the name
policy of policy.py (allowed and denied domains, allowed IP networks), the intermediate's
name constraints (RFC 5280 4.2.1.10: a certificate outside them would not verify) and,
for ACME, whether an enabled challenge can prove the identifier, then the order's
profile (its identifier types and allowed_domains) and the account's grant. Every
refusal is collected, with its reason, into one IdentifiersRefused. ACME turns it into
one rejectedIdentifier (or unsupportedIdentifier, or invalidProfile for a type the
profile a newOrder named does not issue for) problem with a subproblem per refused
identifier (RFC 8555 6.7.1), before any authorization exists, and again at finalize
(finalize_checks.order_profile: the policy, the intermediate or the profile may have
changed since newOrder); sign-csr prints it as one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from cryptography import x509

from acme_ca.authority.grants import UNRESTRICTED, Grant
from acme_ca.authority.policy import (
    check_dns_name,
    check_ip_address,
    normalize_dns_name,
    parse_ip_address,
)
from acme_ca.config import PolicyConfig
from acme_ca.config_policy import Profile
from acme_ca.config_values import at_or_under_any
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed
from acme_ca.errors import PolicyError
from acme_ca.pki.constraints import first_forbidden

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


def identifier_for_name(name: str) -> Identifier:
    """The identifier a certificate name stands for (RFC 8738 3): ip, in its canonical
    text, if the name parses as an IP address, else dns."""
    try:
        return Identifier("ip", str(ip_address(name)))
    except ValueError:
        return Identifier("dns", name)


def challenge_types(identifier: Identifier, available: Sequence[str]) -> tuple[str, ...]:
    _, wildcard = authorization_identifier(identifier)
    kind = "wildcard" if wildcard else identifier.type
    return tuple(t for t in _CHALLENGES_FOR[kind] if t in available)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused identifier (as it was asked for), why, and the problem type that says
    so: unsupportedIdentifier for a type the CA never issues for, invalidProfile for a
    type the order's profile does not (draft-ietf-acme-profiles 4: a profile
    "incompatible with the rest of the contents of the request", when the request named
    it: ``IdentifiersRefused.problem``), else rejectedIdentifier."""

    identifier: Identifier
    reason: str
    type: ProblemType = ProblemType.REJECTED_IDENTIFIER


class IdentifiersRefused(PolicyError):
    """Every refused identifier of one request; the message is one line naming them all."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        self.refusals = tuple(refusals)
        reasons = "; ".join(r.reason for r in self.refusals)
        count = len(self.refusals)
        super().__init__(reasons if count == 1 else f"{count} names refused: {reasons}")

    def problem(self, *, profile_named: bool) -> AcmeProblem:
        """The ACME problem: one rejectedIdentifier (or unsupportedIdentifier, or
        invalidProfile) with a subproblem per refused identifier (RFC 8555 6.7.1). Only a
        request that named the profile refusing a type is invalidProfile (draft-ietf-acme-
        profiles 4); one that named none (a newOrder given the default, and every
        finalize) did not ask for it: rejectedIdentifier then."""
        def kind(refusal: Refusal) -> ProblemType:
            if refusal.type is ProblemType.INVALID_PROFILE and not profile_named:
                return ProblemType.REJECTED_IDENTIFIER
            return refusal.type

        return combined([AcmeProblem(kind(r), r.reason, identifier=r.identifier)
                         for r in self.refusals])


def check_identifiers(
    requested: Iterable[Identifier],
    policy: PolicyConfig,
    *,
    intermediate: x509.Certificate | None = None,
    challenges: Sequence[str] | None = None,
    profile: Profile | None = None,
    grant: Grant = UNRESTRICTED,
) -> tuple[Identifier, ...]:
    """The normalised identifiers, de-duplicated in order, if every one is acceptable;
    else IdentifiersRefused listing each refused one with its reason.

    `intermediate`: refuse what its name constraints forbid. `challenges` (ACME): refuse
    what none of these challenge types can prove. `profile`: refuse a type it does not
    issue for, and a DNS name outside its allowed_domains. `grant`: refuse a name
    outside its domains, and with domains, every IP address.
    """
    accepted: list[Identifier] = []
    refusals: list[Refusal] = []
    for asked in requested:
        try:
            identifier = _normalised(asked, policy)
            if intermediate is not None and _forbidden(intermediate, identifier):
                raise PolicyError(f"{identifier.value} is outside the intermediate CA's "
                                  "name constraints")
            if challenges is not None and not challenge_types(identifier, challenges):
                raise PolicyError(f"no enabled challenge type can prove {identifier.value}")
            if profile is not None and identifier.type not in profile.identifier_types:
                raise _WrongType(f"profile {profile.name} does not issue for {identifier.type} "
                                 f"identifiers such as {identifier.value} (it does for: "
                                 f"{', '.join(profile.identifier_types)})")
            _check_within(identifier, profile, grant)
        except PolicyError as exc:
            refusals.append(Refusal(asked, str(exc)))
        except _Unsupported as exc:
            refusals.append(Refusal(asked, str(exc), ProblemType.UNSUPPORTED_IDENTIFIER))
        except _WrongType as exc:
            refusals.append(Refusal(asked, str(exc), ProblemType.INVALID_PROFILE))
        else:
            accepted.append(identifier)
    if refusals:
        raise IdentifiersRefused(refusals)
    return tuple(dict.fromkeys(accepted))


def parse_identifiers(raw: Any, policy: PolicyConfig, available: Sequence[str] = ("http-01",),
                      intermediate: x509.Certificate | None = None, *,
                      profile: Profile | None = None, grant: Grant = UNRESTRICTED,
                      profile_named: bool = False) -> tuple[Identifier, ...]:
    """newOrder's "identifiers" (RFC 8555 7.4): shape checked (malformed), then
    :func:`check_identifiers`; refusals become one problem with subproblems."""
    if not isinstance(raw, list) or not raw:
        raise malformed("identifiers must be a non-empty list")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeProblem(ProblemType.REJECTED_IDENTIFIER,
                          f"an order may name at most {MAX_IDENTIFIERS} identifiers")
    if not all(isinstance(item, dict) and isinstance(item.get("type"), str)
               and isinstance(item.get("value"), str) for item in raw):
        raise malformed("each identifier must be an object with string type and value")
    try:
        return check_identifiers((Identifier(i["type"], i["value"]) for i in raw), policy,
                                 intermediate=intermediate, challenges=available,
                                 profile=profile, grant=grant)
    except IdentifiersRefused as refused:
        raise refused.problem(profile_named=profile_named) from None


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


class _WrongType(Exception):
    pass


def _check_within(identifier: Identifier, profile: Profile | None, grant: Grant) -> None:
    """PolicyError if the identifier lies outside the profile's allowed_domains (DNS
    names only: its identifier_types decides IP addresses) or the grant's domains (which,
    naming domains only, leave no IP address in)."""
    base, _ = authorization_identifier(identifier)
    if grant.domains and (identifier.type != "dns"
                          or not at_or_under_any(base.value, grant.domains)):
        raise PolicyError(f"{identifier.value} is outside the domains this account may "
                          f"get certificates for ({', '.join(grant.domains)})")
    if (profile is not None and profile.allowed_domains and identifier.type == "dns"
            and not at_or_under_any(base.value, profile.allowed_domains)):
        raise PolicyError(f"{identifier.value} is outside the domains of profile "
                          f"{profile.name} ({', '.join(profile.allowed_domains)})")


def _normalised(asked: Identifier, policy: PolicyConfig) -> Identifier:
    if asked.type == "dns":
        name = normalize_dns_name(asked.value.strip())
        check_dns_name(name, policy.allowed_domains, policy.denied_domains)
        return Identifier("dns", name)
    if asked.type == "ip":
        address = parse_ip_address(asked.value.strip())
        check_ip_address(address, policy.allowed_ip_networks)
        return Identifier("ip", str(address))
    raise _Unsupported(f"identifier type {asked.type!r} is not supported (dns and ip are)")


def _forbidden(intermediate: x509.Certificate, identifier: Identifier) -> bool:
    name = identifier.value if identifier.type == "dns" else ip_address(identifier.value)
    return first_forbidden(intermediate, [name]) is not None
