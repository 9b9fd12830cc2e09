"""Operators: who may use the admin listener, and the certificates that say so.

An operator shows a client certificate at the TLS handshake of the admin listener; the
handshake already checked that this CA signed it (``cli/serve.py`` trusts only this
CA's root and intermediates). ``AdminCertificates.check`` then asks the store, on
every request, so that ``acme-ca certs revoke SERIAL`` locks the operator out at once:
the certificate must be on record, byte for byte, under the ``admin`` profile, of no
name, order or account, issued (not revoked, not merely reserved), within its validity,
signed by the current intermediate or one it replaced, and carry the admin mark
(``pki.profiles.ADMIN_POLICY``, which only ``admin_request`` writes). The profile alone
is not enough: before the name "admin" was reserved, a ``[profiles.admin]`` table could
give it to ACME and sign-csr certificates. Anything else is ``AdminRefused`` (any
certificate that cannot be parsed too): the listener answers 403.

``issue_admin_certificate`` makes one (``acme-ca admin-cert``): a fresh ECDSA P-256
key, the ``pki.profiles.admin_request`` leaf signed by the intermediate, recorded like
every certificate the CA signs, and an audit entry naming the operator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509

from acme_ca.authority import issuance
from acme_ca.clock import Clock
from acme_ca.config_policy import ADMIN_PROFILE
from acme_ca.domain.audit import AuditAction
from acme_ca.domain.models import CertificateStatus, serial_hex
from acme_ca.errors import NotFound, PolicyError
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, PrivateKey, generate_key
from acme_ca.pki.profiles import admin_name, admin_request
from acme_ca.store.base import Store
from acme_ca.store.reads import ReadStore

ADMIN_VALIDITY = timedelta(days=30)
MAX_ADMIN_VALIDITY = timedelta(days=397)  # a person's certificate, renewed yearly at most


class AdminRefused(PolicyError):
    """A client certificate that is not a valid admin certificate of this CA."""


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator the admin listener let in: the certificate's name and serial."""

    name: str
    serial: str  # serial_hex()


class AdminCertificates:
    def __init__(self, store: ReadStore, clock: Clock, issuer: Callable[[], Issuer]) -> None:
        self._store = store
        self._clock = clock
        self._issuer = issuer

    async def check(self, der: bytes | None) -> Operator:
        """The operator whose certificate ``der`` (DER, as the TLS handshake received
        it) is; AdminRefused with a short reason otherwise."""
        if not der:
            raise AdminRefused("an admin certificate is required")
        try:
            certificate = x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
            raise AdminRefused("the client certificate cannot be read") from None
        serial = serial_hex(certificate.serial_number)
        try:
            record = await self._store.get_certificate(serial)
        except NotFound:
            raise AdminRefused("the client certificate is not one this CA issued") from None
        if record.der != der:
            raise AdminRefused("the client certificate is not one this CA issued")
        try:
            name = admin_name(certificate)
        except ValueError:  # an extension or the subject that cannot be parsed
            name = None
        if (record.profile != ADMIN_PROFILE or record.names or record.order_id
                or record.account_id or name is None):
            raise AdminRefused("the client certificate is not an admin certificate")
        if record.status is not CertificateStatus.ISSUED:
            raise AdminRefused(f"the admin certificate {serial} is {record.status.value}")
        now = self._clock.now()
        if not record.not_before <= now < record.not_after:
            raise AdminRefused(f"the admin certificate {serial} is not valid now")
        issuer = self._issuer()
        if record.issuer != issuer.fingerprint and record.issuer not in issuer.earlier:
            raise AdminRefused("the admin certificate was not signed by this CA")
        return Operator(name, serial)


@dataclass(frozen=True, slots=True)
class AdminCertificate:
    """What ``acme-ca admin-cert`` writes: the key, the certificate, its chain."""

    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # the intermediate, then up to the root


async def issue_admin_certificate(
    store: Store, issuer: Issuer, clock: Clock, name: str, *,
    validity: timedelta = ADMIN_VALIDITY, backdate: timedelta = timedelta(minutes=1),
) -> AdminCertificate:
    """A new operator ``name`` (``pki.profiles.ADMIN_NAME``): key, certificate signed
    by the intermediate and recorded under the ``admin`` profile, audit entry
    ADMIN_CERTIFICATE_ISSUED. PolicyError for a validity over ``MAX_ADMIN_VALIDITY``."""
    if not timedelta(0) < validity <= MAX_ADMIN_VALIDITY:
        raise PolicyError(f"an admin certificate's validity is at most "
                          f"{MAX_ADMIN_VALIDITY.days} days")
    key = generate_key(KeyType.EC_P256)
    now = clock.now()
    request = admin_request(key.public_key(), name, now - backdate, now + validity)
    certificate = await issuance.issue(
        store, issuer, request, now, profile=ADMIN_PROFILE,
        action=AuditAction.ADMIN_CERTIFICATE_ISSUED,
        details={"name": name, "not_after": (now + validity).isoformat()})
    return AdminCertificate(key, certificate, issuer.chain)

