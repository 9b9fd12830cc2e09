"""Issuing: the validity window, and the serial stored before signing (a real SQLite store)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from acme_ca.authority import issuance
from acme_ca.config import PolicyConfig
from acme_ca.config_policy import default_profiles
from acme_ca.domain.audit import AuditEntry, AuditEvent
from acme_ca.domain.models import CertificateRecord, CertificateStatus, serial_hex
from acme_ca.errors import Conflict, PolicyError
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import LeafRequest
from acme_ca.store import Store
from tests.conftest import Hierarchy

MAX = timedelta(days=90)
BACKDATE = timedelta(minutes=1)
POLICY = PolicyConfig(max_validity=MAX, backdate=BACKDATE)
SERVER = default_profiles(POLICY.default_validity, POLICY.max_validity)["server"]


def request_for(now: datetime, **changes: object) -> LeafRequest:
    fields: dict[str, object] = {
        "public_key": ec.generate_private_key(ec.SECP256R1()).public_key(),
        "dns_names": ("postgres.bluerobin.local", "db.bluerobin.local"),
        "ip_addresses": (),
        "not_before": now - BACKDATE,
        "not_after": now + timedelta(days=7),
        "extended_key_usages": (ExtendedKeyUsageOID.SERVER_AUTH,
                                ExtendedKeyUsageOID.CLIENT_AUTH),
    }
    return LeafRequest(**{**fields, **changes})  # type: ignore[arg-type]


async def test_issue_stores_the_certificate(store: Store, issuer: Issuer, now: datetime) -> None:
    cert = await issuance.issue(store, issuer, request_for(now), now, profile="mtls")
    record = await store.get_certificate(serial_hex(cert.serial_number))
    assert record.status is CertificateStatus.ISSUED
    assert record.der == cert.public_bytes(Encoding.DER)
    assert record.names == ("postgres.bluerobin.local", "db.bluerobin.local")
    assert record.profile == "mtls"
    assert record.issuer == issuer.fingerprint
    assert (record.not_before, record.not_after) == (
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
    )
    assert record.created_at == now
    assert (record.account_id, record.order_id) == (None, None)  # sign-csr, server TLS
    cert.verify_directly_issued_by(issuer.certificate)


class SpyStore:
    """Records the order of the store calls; passes them on to the real store."""

    def __init__(self, inner: Store, events: list[str]) -> None:
        self.inner = inner
        self.events = events
        self.reserved: list[CertificateRecord] = []

    async def reserve_serial(self, record: CertificateRecord) -> None:
        self.events.append("reserve")
        self.reserved.append(record)
        await self.inner.reserve_serial(record)

    async def store_certificate(self, serial: str, der: bytes) -> CertificateRecord:
        self.events.append("store")
        return await self.inner.store_certificate(serial, der)

    async def append_audit(self, event: AuditEvent, at: datetime) -> AuditEntry:
        self.events.append("audit")
        return await self.inner.append_audit(event, at)


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Calls to Issuer.issue (signing) show up as 'sign'."""
    seen: list[str] = []
    real_issue = Issuer.issue

    def spy(self: Issuer, request: LeafRequest) -> x509.Certificate:
        seen.append("sign")
        return real_issue(self, request)

    monkeypatch.setattr(Issuer, "issue", spy)
    return seen


async def test_the_serial_is_reserved_before_signing(
    store: Store, issuer: Issuer, now: datetime, events: list[str]
) -> None:
    spy = SpyStore(store, events)
    cert = await issuance.issue(spy, issuer, request_for(now), now,  # type: ignore[arg-type]
                                profile="mtls")
    assert events == ["reserve", "sign", "store", "audit"]  # recorded once stored
    (reserved,) = spy.reserved
    assert reserved.status is CertificateStatus.RESERVED and reserved.der is None
    assert reserved.serial == serial_hex(cert.serial_number)


async def test_a_serial_already_taken_is_never_signed(
    store: Store, issuer: Issuer, now: datetime, events: list[str]
) -> None:
    first = await issuance.issue(store, issuer, request_for(now), now, profile="mtls")
    events.clear()
    again = request_for(now, serial=first.serial_number)
    with pytest.raises(Conflict):
        await issuance.issue(store, issuer, again, now, profile="mtls")
    assert events == []
    record = await store.get_certificate(serial_hex(first.serial_number))
    assert record.der == first.public_bytes(Encoding.DER)


async def test_a_given_serial_is_used(store: Store, issuer: Issuer, now: datetime) -> None:
    serial = 0x7FEDCBA9876543210F
    cert = await issuance.issue(store, issuer, request_for(now, serial=serial), now,
                                profile="mtls")
    assert cert.serial_number == serial
    assert (await store.get_certificate(serial_hex(serial))).status is CertificateStatus.ISSUED


async def test_the_record_is_capped_at_the_issuers_not_after(
    store: Store, issuer: Issuer, now: datetime
) -> None:
    end = issuer.certificate.not_valid_after_utc
    request = request_for(now, not_after=end + timedelta(days=30))
    cert = await issuance.issue(store, issuer, request, now, profile="mtls")
    record = await store.get_certificate(serial_hex(cert.serial_number))
    assert cert.not_valid_after_utc == record.not_after == end


def sign_csr_window(now: datetime, validity: timedelta,
                    issuer: Issuer) -> tuple[datetime, datetime]:
    """The window sign-csr asks for: no notBefore or notAfter, a validity."""
    return issuance.certificate_window(None, None, now, POLICY,
                                       issuer.certificate.not_valid_after_utc, validity=validity,
                                       profile=SERVER)


def test_validity_window_backdates(issuer: Issuer, now: datetime) -> None:
    """The notBefore is moved back for clock skew (RFC 5280 4.1.2.5 validity)."""
    window = sign_csr_window(now, timedelta(days=7), issuer)
    assert window == (now - BACKDATE, now - BACKDATE + timedelta(days=7))


def test_validity_window_allows_the_maximum(issuer: Issuer, now: datetime) -> None:
    _, not_after = sign_csr_window(now, MAX, issuer)
    assert not_after == now - BACKDATE + MAX


def test_validity_window_stops_at_the_issuers_not_after(
    make_hierarchy: Callable[..., Hierarchy], now: datetime
) -> None:
    h = make_hierarchy("short", intermediate_validity=timedelta(days=10))
    p = h.paths
    short = Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain, None, now)
    not_before, not_after = sign_csr_window(now, timedelta(days=30), short)
    assert not_before == now - BACKDATE
    assert not_after == short.certificate.not_valid_after_utc == now + timedelta(days=10)


@pytest.mark.parametrize("validity", [MAX + timedelta(seconds=1), timedelta(days=365)])
def test_validity_window_refuses_more_than_the_maximum(
    issuer: Issuer, now: datetime, validity: timedelta
) -> None:
    with pytest.raises(PolicyError, match=r"exceeds profiles\.server\.max_validity"):
        sign_csr_window(now, validity, issuer)
