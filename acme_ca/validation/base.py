"""What every validator shares: the result type, the Validator protocol, key authorizations.

A validator is a pure function of (identifier, token, key authorization) and the
network: it fetches, compares and returns a ``ValidationResult``. It never writes
state and never raises for a failed validation; the problem is part of the result
(Boulder's stateless VA, ``va.proto`` DoDCV). The authority records the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The outcome of one validation attempt.

    ``problem`` is None when the identifier was validated. ``records`` says what was
    fetched, one dict per request (url, hostname, port, addresses resolved, address
    used, status, redirect location), so a failure can be explained and the address
    actually connected to can be audited.
    """

    problem: AcmeProblem | None
    records: tuple[dict[str, Any], ...] = ()

    @property
    def valid(self) -> bool:
        return self.problem is None


class Validator(Protocol):
    """One challenge type (http-01, dns-01, tls-alpn-01)."""

    async def validate(
        self, identifier: Identifier, token: str, key_authorization: str
    ) -> ValidationResult:
        """Check the challenge response; return the problem instead of raising it."""


def key_authorization(token: str, thumbprint: str) -> str:
    """RFC 8555 8.1: keyAuthorization = token || '.' || base64url(Thumbprint(accountKey))."""
    return f"{token}.{thumbprint}"
