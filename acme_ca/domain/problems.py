"""The one protocol error: an ACME problem (RFC 8555 6.7, RFC 7807).

Raised anywhere below the web front end (authority, validation, api checks); only
the front end turns it into an ``application/problem+json`` response. The status
code defaults per type and may be overridden (``malformed`` is also 404/405/415).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from acme_ca.domain.models import Identifier
from acme_ca.encoding import b64url_decode

ACME_ERROR_PREFIX = "urn:ietf:params:acme:error:"


class ProblemType(StrEnum):
    ACCOUNT_DOES_NOT_EXIST = "accountDoesNotExist"
    ALREADY_REPLACED = "alreadyReplaced"
    ALREADY_REVOKED = "alreadyRevoked"
    BAD_CSR = "badCSR"
    BAD_NONCE = "badNonce"
    BAD_PUBLIC_KEY = "badPublicKey"
    BAD_REVOCATION_REASON = "badRevocationReason"
    BAD_SIGNATURE_ALGORITHM = "badSignatureAlgorithm"
    CAA = "caa"
    COMPOUND = "compound"
    CONNECTION = "connection"
    DNS = "dns"
    EXTERNAL_ACCOUNT_REQUIRED = "externalAccountRequired"
    INCORRECT_RESPONSE = "incorrectResponse"
    INVALID_CONTACT = "invalidContact"
    INVALID_PROFILE = "invalidProfile"
    MALFORMED = "malformed"
    ORDER_NOT_READY = "orderNotReady"
    RATE_LIMITED = "rateLimited"
    REJECTED_IDENTIFIER = "rejectedIdentifier"
    SERVER_INTERNAL = "serverInternal"
    TLS = "tls"
    UNAUTHORIZED = "unauthorized"
    UNSUPPORTED_CONTACT = "unsupportedContact"
    UNSUPPORTED_IDENTIFIER = "unsupportedIdentifier"
    USER_ACTION_REQUIRED = "userActionRequired"

    @property
    def urn(self) -> str:
        return ACME_ERROR_PREFIX + self.value


_DEFAULT_STATUS: Mapping[ProblemType, int] = {
    ProblemType.ACCOUNT_DOES_NOT_EXIST: 400,
    ProblemType.ALREADY_REPLACED: 409,
    ProblemType.ORDER_NOT_READY: 403,
    ProblemType.UNAUTHORIZED: 403,
    ProblemType.USER_ACTION_REQUIRED: 403,
    ProblemType.RATE_LIMITED: 429,
    ProblemType.SERVER_INTERNAL: 500,
}


class AcmeProblem(Exception):
    """An RFC 8555 error: type, one-line detail, HTTP status, optional subproblems."""

    def __init__(
        self,
        type: ProblemType,
        detail: str,
        *,
        status: int | None = None,
        identifier: Identifier | None = None,
        subproblems: Sequence[AcmeProblem] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.type = type
        self.detail = detail
        self.status = status or _DEFAULT_STATUS.get(type, 400)
        self.identifier = identifier
        self.subproblems = tuple(subproblems)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})  # e.g. "algorithms" for badSignatureAlgorithm

    def to_json(self) -> dict[str, Any]:
        """The problem document. RFC 8555 6.7.1: "identifier" appears only in
        subproblems, never at the top level (the identifier a problem was raised with
        stays on the object, for the code that makes it a subproblem)."""
        return self._document(subproblem=False)

    def _document(self, *, subproblem: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type.urn, "detail": self.detail}
        if subproblem and self.identifier is not None:
            doc["identifier"] = {"type": self.identifier.type, "value": self.identifier.value}
        if self.subproblems:
            doc["subproblems"] = [p._document(subproblem=True) for p in self.subproblems]
        doc.update(self.extra)
        doc["status"] = self.status
        return doc

    def dumps(self) -> str:
        """The JSON document, as stored in a challenge's or order's ``error``."""
        return json.dumps(self.to_json(), separators=(",", ":"))

    def __repr__(self) -> str:
        return f"AcmeProblem({self.type.value}, {self.detail!r}, status={self.status})"


def malformed(detail: str, status: int = 400) -> AcmeProblem:
    return AcmeProblem(ProblemType.MALFORMED, detail, status=status)


def b64url_field(text: object, what: str) -> bytes:
    """The bytes of a base64url protocol field (RFC 8555 6.1, RFC 7515 2); anything but
    the one canonical spelling is malformed."""
    try:
        return b64url_decode(text)
    except ValueError as exc:
        raise malformed(f"{what} {exc}") from None


def unauthorized(detail: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.UNAUTHORIZED, detail)


def server_internal(request_id: str) -> AcmeProblem:
    return AcmeProblem(
        ProblemType.SERVER_INTERNAL,
        f"the server failed to handle the request; request id {request_id}",
        status=500,
    )
