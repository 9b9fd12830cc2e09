"""CAA (RFC 8659) with the ACME parameters accounturi and validationmethods (RFC 8657).

The authority calls ``CaaChecker.check`` after a successful validation. It finds the
relevant RRset (RFC 8659 3): the first non-empty CAA set at the name or, climbing
towards the root (the root itself excluded), at a parent; each lookup follows CNAMEs
as a resolver does, and NXDOMAIN at a level counts as an empty set. Then:

- no relevant set, or one without ``issue`` properties: issuance is allowed (4.2);
- a property with the critical flag (128) and a tag this CA does not understand
  forbids issuance (4.1);
- for a wildcard, ``issuewild`` properties take precedence over ``issue`` when there
  is at least one (4.3);
- one property must name this CA (an issuer-domain-name equal, ignoring case, to one
  of ``identities``) with parameters that accept the request: ``accounturi`` equal to
  the account URL (RFC 8657 3), ``validationmethods`` listing the method (RFC 8657 4);
  an empty issuer (``issue ";"``) and a malformed value authorise no one.

A lookup that fails (SERVFAIL, timeout) forbids issuance with a ``dns`` problem: the
check fails closed. A refusal is a ``caa`` problem (403) naming the level (a name the
client asked for; a CNAME is counted, never named: see ``dns``) and what it does not
authorise: this CA, this account, this validation method, or a critical property
this CA does not understand. It never repeats a record value (other CAs, account
URLs, methods, tags): CNAMEs lead anywhere the resolvers see, internal zones included
(RFC 8555 10.2). The values are logged for the operator. Nothing here raises: the
problem is returned.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from dns.rdtypes.ANY.CAA import CAA

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.dns import DnsAnswer, DnsLookup
from acme_ca.validation.network import ip_literal

log = logging.getLogger(__name__)

CRITICAL_FLAG = 0x80
KNOWN_TAGS = frozenset({"issue", "issuewild", "iodef", "issuemail"})
_LABEL = r"[A-Za-z0-9](?:-*[A-Za-z0-9])*"  # RFC 8659 4.2 label (and parameter tag)
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_TAG = re.compile(_LABEL)
_VALUE = re.compile(r"[\x21-\x3a\x3c-\x7e]*")
_WSP = " \t"


@dataclass(frozen=True, slots=True)
class IssueValue:
    """An issue/issuewild property value: issuer-domain-name and parameters (4.2)."""

    issuer: str  # lowercase; "" means no CA may issue
    parameters: dict[str, str] = field(default_factory=dict)  # tags lowercased


def parse_issue_value(raw: bytes) -> IssueValue:
    """RFC 8659 4.2 issue-value; raises ValueError when malformed."""
    text = raw.decode("ascii")  # UnicodeDecodeError is a ValueError
    issuer_text, _, rest = text.partition(";")
    issuer = issuer_text.strip(_WSP)
    if issuer and not _DOMAIN.fullmatch(issuer):
        raise ValueError(f"the issuer {issuer!r} is not a domain name")
    parameters: dict[str, str] = {}
    for part in (p.strip(_WSP) for p in rest.split(";")):
        if not part:
            continue  # "ca.example;" and a stray ";" are tolerated
        tag, equals, value = (p.strip(_WSP) for p in part.partition("="))
        if not equals or not _TAG.fullmatch(tag) or not _VALUE.fullmatch(value):
            raise ValueError(f"the parameter {part!r} is not tag=value")
        if tag.lower() in parameters:
            raise ValueError(f"the parameter {tag!r} appears twice")
        parameters[tag.lower()] = value
    return IssueValue(issuer.lower(), parameters)


class CaaChecker:
    """Decides whether CAA lets this CA issue for a name (RFC 8659, RFC 8657)."""

    def __init__(self, resolver: DnsLookup, identities: Sequence[str]) -> None:
        """``identities`` are the issuer domain names that mean this CA
        ([validation] caa_identities); with none, any CAA issue set forbids issuance.
        """
        self._dns = resolver
        self._identities = frozenset(i.strip().lower().rstrip(".") for i in identities)

    async def check(
        self, identifier: Identifier, *, wildcard: bool, account_uri: str, method: str
    ) -> AcmeProblem | None:
        """None when issuance for ``identifier`` is allowed, else the problem."""
        if identifier.type != "dns" or ip_literal(identifier.value) is not None:
            return None  # CAA is defined for domain names only
        name = identifier.value.strip().lower().rstrip(".")
        if name.startswith("*."):
            name, wildcard = name[2:], True
        problem_identifier = Identifier("dns", identifier.value)
        try:
            found = await self._relevant_set(name)
        except AcmeProblem as failure:
            return AcmeProblem(
                ProblemType.DNS,
                f"cannot check CAA for {name}: {failure.detail}",
                identifier=problem_identifier,
            )
        if found is None:
            return None
        detail = self._refusal(found, wildcard, account_uri, method)
        if detail is None:
            return None
        if found.name != name:
            detail += f" (relevant for {name})"
        log.info("%s; the records at %s: %s", detail, found.canonical_name,
                 "; ".join(r.to_text() for r in found.rdatas))
        return AcmeProblem(ProblemType.CAA, detail, status=403, identifier=problem_identifier)

    async def _relevant_set(self, name: str) -> DnsAnswer | None:
        """RFC 8659 3: the first non-empty CAA RRset at the name or a parent."""
        labels = name.split(".")
        for index in range(len(labels)):
            answer = await self._dns.query(".".join(labels[index:]), "CAA")
            if answer.rdatas:
                return answer
        return None

    def _refusal(
        self, answer: DnsAnswer, wildcard: bool, account_uri: str, method: str
    ) -> str | None:
        """None when the RRset lets this CA issue, else why not, in words that repeat no
        record value (see the module)."""
        where = f"CAA at {answer.where}"
        properties = [
            (r.flags, r.tag.decode("ascii", "replace").lower(), r.value)
            for r in answer.rdatas
            if isinstance(r, CAA)
        ]
        if any(flags & CRITICAL_FLAG and tag not in KNOWN_TAGS for flags, tag, _ in properties):
            return f"{where} has a critical property this CA does not understand"
        tag = "issue"
        if wildcard and any(t == "issuewild" for _, t, _ in properties):
            tag = "issuewild"
            where = f"CAA issuewild at {answer.where}"
        values = [value for _, t, value in properties if t == tag]
        if not values:
            return None  # no issue property: any CA may issue (RFC 8659 4.2)
        reasons: list[str] = []
        for raw in values:
            try:
                value = parse_issue_value(raw)
            except ValueError:
                continue  # a malformed value authorises no one
            if value.issuer not in self._identities:
                continue
            reason = _parameter_refusal(value, account_uri, method)
            if reason is None:
                return None
            reasons.append(reason)
        if reasons:
            return f"{where} {'; '.join(dict.fromkeys(reasons))}"
        return f"{where} does not authorise this CA"


def _parameter_refusal(value: IssueValue, account_uri: str, method: str) -> str | None:
    """RFC 8657: None when accounturi and validationmethods accept the request."""
    account = value.parameters.get("accounturi")
    if account is not None and account != account_uri:
        return "does not authorise this account"
    methods = value.parameters.get("validationmethods")
    if methods is not None and method not in methods.split(","):
        return f"does not authorise this validation method ({method})"
    return None
