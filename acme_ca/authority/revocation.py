"""Certificate revocation (RFC 8555 7.6, reason codes of RFC 5280 5.3.1)."""

from __future__ import annotations

import logging
from typing import Any

from cryptography import x509

from acme_ca.authority.identifiers import identifier_for_name
from acme_ca.clock import Clock
from acme_ca.domain.models import Account, CertificateRecord, CertificateStatus, serial_hex
from acme_ca.domain.problems import AcmeProblem, ProblemType, b64url_field, malformed, unauthorized
from acme_ca.encoding import jwk_thumbprint
from acme_ca.errors import Conflict, NotFound
from acme_ca.pki.crl import REASONS, UNSPECIFIED
from acme_ca.store.base import Store

log = logging.getLogger(__name__)

# The CRLReason codes of RFC 5280 5.3.1 a subscriber may claim (RFC 8555 7.6 lets the
# server "disallow a subset"). Refused: cACompromise (2), aACompromise (10) and
# privilegeWithdrawn (9) are the CA's own findings, not a subscriber's; certificateHold
# (6) and removeFromCRL (8) belong to suspension, which this CA never does; 7 is
# unassigned. The same five as Let's Encrypt allows.
KEY_COMPROMISE, AFFILIATION_CHANGED, SUPERSEDED, CESSATION_OF_OPERATION = 1, 3, 4, 5
ALLOWED_REASONS = frozenset({UNSPECIFIED, KEY_COMPROMISE, AFFILIATION_CHANGED, SUPERSEDED,
                             CESSATION_OF_OPERATION})
PRIVILEGE_WITHDRAWN = 9
# Every CRLReason a CRL of this CA may carry (pki/crl.py's table), by the name RFC 5280
# 5.3.1 gives it (`certs show` prints it).
REASON_NAMES = {code: flag.value for code, flag in REASONS.items()}
# What an operator may give (`acme-ca certs revoke --reason NAME`): a subscriber's five and
# privilegeWithdrawn, the CA's own finding that the holder may no longer have it. The
# CA and AA compromises concern a CA certificate, not a leaf; no suspension (hold).
OPERATOR_REASONS = {REASON_NAMES[code]: code
                    for code in sorted(ALLOWED_REASONS | {PRIVILEGE_WITHDRAWN})}


def reason_name(code: int | None) -> str | None:
    """The RFC 5280 name of a CRLReason code ("reason 7" for one the RFC leaves out)."""
    return None if code is None else REASON_NAMES.get(code, f"reason {code}")


class RevocationService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def revoke(
        self, payload: dict[str, Any], *, account: Account | None, key_thumbprint: str
    ) -> None:
        """Revoke by the owning account, by an account authorized for every name, or by
        a request signed with the certificate's own key (``account`` None)."""
        der = b64url_field(payload.get("certificate"), "certificate")
        reason = payload.get("reason", UNSPECIFIED)
        if isinstance(reason, bool) or not isinstance(reason, int) or reason not in ALLOWED_REASONS:
            raise AcmeProblem(
                ProblemType.BAD_REVOCATION_REASON,
                f"reason {reason!r} is not allowed; allowed: "
                f"{', '.join(map(str, sorted(ALLOWED_REASONS)))}",
            )
        try:
            certificate = x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
            raise malformed("certificate is not a DER X.509 certificate") from None
        try:
            record = await self._store.get_certificate(serial_hex(certificate.serial_number))
        except NotFound:
            raise malformed("this CA did not issue that certificate", status=404) from None
        if record.der != der:
            raise malformed("this CA did not issue that certificate", status=404)
        if record.status is CertificateStatus.REVOKED:
            raise AcmeProblem(ProblemType.ALREADY_REVOKED, "the certificate is already revoked")
        if account is None:
            if jwk_thumbprint(certificate.public_key()) != key_thumbprint:  # type: ignore[arg-type]
                raise unauthorized("the request is not signed by the certificate's key")
        elif record.account_id != account.id and not await self._holds_all(account, record.names):
            raise unauthorized("this account may not revoke that certificate")
        try:
            await self._store.revoke_certificate(record.serial, reason, self._clock.now())
        except Conflict:
            raise AcmeProblem(
                ProblemType.ALREADY_REVOKED, "the certificate is already revoked"
            ) from None
        log.info("certificate %s (%s) revoked, reason %d, by %s", record.serial,
                 ", ".join(record.names), reason,
                 f"account {account.id}" if account else "its own key")

    async def revoke_by_operator(self, serial: str, reason: int) -> CertificateRecord:
        """Revoke any certificate the CA signed, by ACME or by `acme-ca sign-csr` (one of
        no account, which only its key holder could revoke over ACME): the operator
        decides, no proof is asked. ``reason``: one of ``OPERATOR_REASONS``. The record
        as revoked; ``NotFound`` or ``Conflict`` with one line an operator can act on
        for an unknown serial, a serial reserved and never signed, one already revoked."""
        if reason not in OPERATOR_REASONS.values():
            raise ValueError(f"reason {reason} is not one an operator may give")
        try:
            record = await self._store.revoke_certificate(serial, reason, self._clock.now())
        except NotFound:
            raise NotFound(f"no certificate has the serial {serial}") from None
        except Conflict:
            raise Conflict(_why_not_revocable(await self._store.get_certificate(serial))) \
                from None
        log.info("certificate %s (%s) revoked, reason %d, by the operator", record.serial,
                 ", ".join(record.names), reason)
        return record

    async def _holds_all(self, account: Account, names: tuple[str, ...]) -> bool:
        """Does the account hold a valid authorization for every name of the certificate?
        Never for a certificate of no name (an admin certificate): nothing is held."""
        if not names:
            return False
        identifiers = [identifier_for_name(n) for n in names]
        valid = await self._store.valid_authorizations(account.id, identifiers,
                                                       self._clock.now())
        held = {("*." if a.wildcard else "") + a.identifier.value for a in valid}
        return set(names) <= held


def _why_not_revocable(record: CertificateRecord) -> str:
    if record.status is CertificateStatus.RESERVED:
        return (f"the serial {record.serial} was reserved but never signed: there is no "
                "certificate to revoke")
    when = f"{record.revoked_at:%Y-%m-%d %H:%M} UTC" if record.revoked_at else "earlier"
    return (f"the certificate {record.serial} is already revoked ({when}, "
            f"{reason_name(record.revocation_reason)})")
