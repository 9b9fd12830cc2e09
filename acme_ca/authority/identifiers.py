"""The identifiers of a newOrder (RFC 8555 7.4): parsed, normalised, checked against policy."""

from __future__ import annotations

from typing import Any

from acme_ca.authority.policy import check_dns_name
from acme_ca.config import PolicyConfig
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed
from acme_ca.errors import PolicyError

MAX_IDENTIFIERS = 100


def parse_identifiers(raw: Any, policy: PolicyConfig) -> tuple[Identifier, ...]:
    """Normalise and check every identifier; all refusals come back together as
    subproblems of one rejectedIdentifier (RFC 8555 6.7.1)."""
    if not isinstance(raw, list) or not raw:
        raise malformed("identifiers must be a non-empty list")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeProblem(
            ProblemType.REJECTED_IDENTIFIER,
            f"an order may name at most {MAX_IDENTIFIERS} identifiers",
        )
    identifiers: list[Identifier] = []
    problems: list[AcmeProblem] = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("type"), str)
            or not isinstance(item.get("value"), str)
        ):
            raise malformed("each identifier must be an object with string type and value")
        kind, value = item["type"], item["value"]
        identifier = Identifier(kind, value.strip().lower().rstrip("."))
        if kind != "dns":
            problems.append(
                AcmeProblem(
                    ProblemType.UNSUPPORTED_IDENTIFIER,
                    f"identifier type {kind!r} is not supported",
                    identifier=Identifier(kind, value),
                )
            )
            continue
        try:
            check_dns_name(identifier.value, policy.allowed_domains)
        except PolicyError as exc:
            problems.append(
                AcmeProblem(ProblemType.REJECTED_IDENTIFIER, str(exc), identifier=identifier)
            )
            continue
        if identifier.value.startswith("*."):
            problems.append(
                AcmeProblem(
                    ProblemType.REJECTED_IDENTIFIER,
                    "wildcard names need dns-01 validation, which this server does not offer yet",
                    identifier=identifier,
                )
            )
            continue
        identifiers.append(identifier)
    if problems:
        if len(problems) == 1:
            only = problems[0]
            raise AcmeProblem(
                only.type, only.detail, identifier=only.identifier, subproblems=problems
            )
        raise AcmeProblem(
            ProblemType.REJECTED_IDENTIFIER,
            f"{len(problems)} identifiers were refused",
            subproblems=problems,
        )
    return tuple(dict.fromkeys(identifiers))
