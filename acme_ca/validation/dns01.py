"""dns-01 (RFC 8555 8.4): a TXT record at _acme-challenge.<name> holds the digest.

The expected value is base64url(SHA-256(key authorization)) without padding. The TXT
records at ``_acme-challenge.<name>`` are looked up through ``DnsLookup`` (the servers
chosen for the name, CNAMEs followed so a challenge zone can be delegated, EDNS0 with
TCP fallback for large sets); the challenge passes when any one record equals the
digest. A record of several character-strings counts as their concatenation (RFC 1035
3.3.14 allows them; RFC 7208 3.3 practice joins them).

A wildcard identifier's authorization already carries the base name (RFC 8555 7.1.3);
a leading "*." is dropped here all the same. IP identifiers cannot use dns-01 (RFC
8738 7). Nothing raises for a failed validation: the problem is in the result, with a
record of each lookup (resolver that answered, CNAME chain, values found).

The problem counts the TXT records found and names the expected digest, never the
values: a CNAME can point the challenge name at any name the resolvers see, internal
zones included (RFC 8555 10.2; see http01). The values stay in the record, for the
operator's logs.
"""

from __future__ import annotations

import hashlib
import re

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.encoding import b64url_encode
from acme_ca.validation.base import ValidationResult
from acme_ca.validation.dns import DnsLookup, txt_value
from acme_ca.validation.network import ip_literal

CHALLENGE_LABEL = "_acme-challenge"
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def txt_digest(key_authorization: str) -> str:
    """RFC 8555 8.4: base64url(SHA-256(key authorization)), no padding."""
    digest = hashlib.sha256(key_authorization.encode("utf-8")).digest()
    return b64url_encode(digest)


def challenge_name(identifier: Identifier) -> str:
    """_acme-challenge.<name>; raises AcmeProblem for what dns-01 cannot validate."""
    if identifier.type == "ip" or ip_literal(identifier.value) is not None:
        raise AcmeProblem(
            ProblemType.MALFORMED,
            f"dns-01 cannot validate the IP address {identifier.value} (RFC 8738 7)",
        )
    if identifier.type != "dns":
        raise AcmeProblem(
            ProblemType.UNSUPPORTED_IDENTIFIER,
            f"dns-01 cannot validate a {identifier.type!r} identifier",
        )
    name = identifier.value.strip().lower().rstrip(".").removeprefix("*.")
    if len(name) > 253 - len(CHALLENGE_LABEL) - 1 or not all(
        _LABEL.fullmatch(label) for label in name.split(".")
    ):
        raise AcmeProblem(ProblemType.MALFORMED, f"{identifier.value!r} is not a DNS name")
    return f"{CHALLENGE_LABEL}.{name}"


class Dns01Validator:
    """Validates dns identifiers, wildcards included, with dns-01."""

    def __init__(self, resolver: DnsLookup) -> None:
        """``resolver`` is a ``DnsClient`` (or a fake with the same ``query``)."""
        self._dns = resolver

    async def validate(
        self, identifier: Identifier, token: str, key_authorization: str
    ) -> ValidationResult:
        """Look up TXT at _acme-challenge.<name> and compare each record with the digest."""
        try:
            name = challenge_name(identifier)
            answer = await self._dns.query(name, "TXT")
        except AcmeProblem as problem:
            return ValidationResult(problem)
        records = (answer.record(),)
        expected = txt_digest(key_authorization)
        if answer.nxdomain:
            detail = f"{answer.where} does not exist (NXDOMAIN) at {answer.server}"
            return ValidationResult(AcmeProblem(ProblemType.DNS, detail), records)
        values = [txt_value(rdata) for rdata in answer.rdatas]
        if not values:
            detail = f"no TXT record found at {answer.where} (asked {answer.server})"
            return ValidationResult(AcmeProblem(ProblemType.DNS, detail), records)
        if expected in values:
            return ValidationResult(None, records)
        count = "1 TXT record" if len(values) == 1 else f"{len(values)} TXT records"
        detail = (
            f"found {count} at {answer.where} (from {answer.server}), none equals the "
            f"expected digest {expected}"
        )
        return ValidationResult(AcmeProblem(ProblemType.UNAUTHORIZED, detail), records)

