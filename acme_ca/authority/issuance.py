"""Issuing a certificate: decide its validity, store the serial, sign, store the certificate.

The serial is written before signing (Boulder's ISSUANCE-CYCLE), so the store always
knows every serial the intermediate has signed: a crash leaves at worst a reserved
serial with no certificate. For an order the reservation shares its transaction with
the order's move to PROCESSING, and the certificate with the move to VALID.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.domain.models import CertificateRecord, Order, serial_hex
from acme_ca.errors import PolicyError
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import LeafRequest
from acme_ca.pki.serials import random_serial
from acme_ca.store.base import Store


def validity_window(
    now: datetime, validity: timedelta, max_validity: timedelta, backdate: timedelta, issuer: Issuer
) -> tuple[datetime, datetime]:
    """(notBefore, notAfter): backdated against clock skew, within policy and the issuer.

    As Boulder does, the backdate counts inside the validity: the certificate's whole
    lifetime is `validity`, never more than `max_validity`.
    """
    if validity > max_validity:
        raise PolicyError(f"a validity of {validity} exceeds policy.max_validity ({max_validity})")
    not_before = now - backdate
    return not_before, min(not_before + validity, issuer.certificate.not_valid_after_utc)


def reservation(
    issuer: Issuer,
    request: LeafRequest,
    now: datetime,
    *,
    account_id: str | None = None,
    order_id: str | None = None,
) -> tuple[CertificateRecord, LeafRequest]:
    """The RESERVED record to store before signing, and the request with its serial."""
    serial = request.serial or random_serial()
    record = CertificateRecord(
        serial=serial_hex(serial),
        issuer=issuer.fingerprint,
        names=request.dns_names + tuple(str(a) for a in request.ip_addresses),
        profile=request.profile.value,
        not_before=request.not_before,
        not_after=min(request.not_after, issuer.certificate.not_valid_after_utc),
        created_at=now,
        account_id=account_id,
        order_id=order_id,
    )
    return record, replace(request, serial=serial)


async def issue(
    store: Store,
    issuer: Issuer,
    request: LeafRequest,
    now: datetime,
    *,
    account_id: str | None = None,
    order_id: str | None = None,
) -> x509.Certificate:
    """Sign `request` with the intermediate, recording it in `store` before and after."""
    record, request = reservation(issuer, request, now, account_id=account_id,
                                  order_id=order_id)
    await store.reserve_serial(record)
    certificate = issuer.issue(request)
    await store.store_certificate(record.serial, certificate.public_bytes(Encoding.DER))
    return certificate


async def sign_for_order(
    store: Store, issuer: Issuer, request: LeafRequest, record: CertificateRecord
) -> tuple[x509.Certificate, Order]:
    """Sign for an order whose serial ``record`` is reserved (``Store.start_issuance``,
    which also moved the order to PROCESSING): the certificate and the order's move to
    VALID are written in one transaction (``finish_order``); the valid order comes back."""
    if record.order_id is None:
        raise ValueError("the reservation names no order")
    certificate = issuer.issue(request)
    order = await store.finish_order(record.order_id, record.serial,
                                     certificate.public_bytes(Encoding.DER))
    return certificate, order
