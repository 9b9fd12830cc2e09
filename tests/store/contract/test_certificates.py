"""Certificates: reserved before signing, issued, revoked, never deleted, and a serial is
never used twice (RFC 5280 4.1.2.2: unique for each certificate an issuer signs).

Certificates name their account and order without a foreign key: ``acme-ca sign-csr``
issues certificates for no account and no order, so these tests reserve serials for
orders that do not exist.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from acme_ca.domain.models import CertificateRecord, CertificateStatus
from acme_ca.errors import Conflict, NotFound, StoreError
from acme_ca.store import Store
from tests.store.conftest import DER, T0, make_record


async def issued(store: Store, serial: str = "1a2b3c") -> CertificateRecord:
    await store.reserve_serial(make_record(serial))
    return await store.store_certificate(serial, DER)


async def test_reserve_store_get_round_trip(store: Store):
    record = make_record(not_after=datetime(2026, 4, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    await store.reserve_serial(record)
    reserved = await store.get_certificate("1a2b3c")
    assert reserved == record
    assert reserved.der is None and reserved.status is CertificateStatus.RESERVED

    stored = await store.store_certificate("1a2b3c", DER)
    fetched = await store.get_certificate("1a2b3c")
    assert stored == fetched == replace(record, status=CertificateStatus.ISSUED, der=DER)
    assert fetched.names == ("www.example.test", "example.test", "192.0.2.1")
    assert isinstance(fetched.der, bytes) and fetched.der == DER
    for moment in (fetched.not_before, fetched.not_after, fetched.created_at):
        assert moment.utcoffset() == timedelta(0)
    assert fetched.not_after == datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    assert fetched.not_before.microsecond == 123456


async def test_optional_fields_round_trip_as_none(store: Store):
    record = make_record("ff", account_id=None, order_id=None, names=())
    await store.reserve_serial(record)
    assert await store.get_certificate("ff") == record


async def test_naive_datetimes_and_non_reserved_records_are_refused(store: Store):
    with pytest.raises(ValueError, match="naive"):
        await store.reserve_serial(make_record(created_at=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="RESERVED"):
        await store.reserve_serial(make_record(status=CertificateStatus.ISSUED, der=DER))
    with pytest.raises(NotFound):
        await store.get_certificate("1a2b3c")


async def test_a_serial_that_is_not_lowercase_hex_is_refused_by_the_schema(store: Store):
    """The schema checks the serial's form (``serial_hex``): a plain ``StoreError`` that
    names the check constraint, not a ``Conflict`` (nothing exists to conflict with)."""
    with pytest.raises(StoreError, match=r"(?i)check constraint") as caught:
        await store.reserve_serial(make_record("1A2B"))
    assert not isinstance(caught.value, Conflict)


async def test_reserving_a_serial_twice_is_a_conflict(store: Store):
    await store.reserve_serial(make_record())
    with pytest.raises(Conflict, match="1a2b3c"):
        await store.reserve_serial(make_record(names=("other.test",)))
    assert (await store.get_certificate("1a2b3c")).names[0] == "www.example.test"


async def test_a_serial_is_never_reused_across_stores(store: Store, other: Store):
    """Another replica reserving a serial that exists, in any state, gets Conflict and
    changes nothing; of two replicas reserving one new serial at once, one wins."""
    await issued(store, "0a")
    await store.revoke_certificate("0a", 1, T0)
    await store.reserve_serial(make_record("0b"))
    for serial in ("0a", "0b"):
        before = await store.get_certificate(serial)
        with pytest.raises(Conflict, match=serial):
            await other.reserve_serial(make_record(serial, names=("other.test",),
                                                   order_id="order-2"))
        assert await store.get_certificate(serial) == before
    results = await asyncio.gather(
        *(each.reserve_serial(make_record("0c", order_id=f"order-{n}"))
          for n, each in enumerate((store, other) * 4)),
        return_exceptions=True)
    assert results.count(None) == 1 and sum(isinstance(r, Conflict) for r in results) == 7, results
    winner = results.index(None)
    assert (await other.get_certificate("0c")).order_id == f"order-{winner}"


async def test_get_or_store_an_unknown_serial_is_not_found(store: Store):
    with pytest.raises(NotFound):
        await store.get_certificate("abc")
    with pytest.raises(NotFound):
        await store.store_certificate("abc", DER)


async def test_storing_twice_is_a_conflict(store: Store):
    await issued(store)
    with pytest.raises(Conflict, match="issued, not reserved"):
        await store.store_certificate("1a2b3c", b"other")
    assert (await store.get_certificate("1a2b3c")).der == DER


async def test_revoke_records_reason_and_time(store: Store):
    await issued(store)
    when = T0 + timedelta(days=3)
    revoked = await store.revoke_certificate("1a2b3c", 1, when)
    assert revoked.status is CertificateStatus.REVOKED
    assert (revoked.revocation_reason, revoked.revoked_at) == (1, when)
    assert revoked.der == DER
    assert await store.get_certificate("1a2b3c") == revoked


async def test_revoking_twice_is_a_conflict_and_keeps_the_first(store: Store):
    await issued(store)
    await store.revoke_certificate("1a2b3c", 1, T0)
    with pytest.raises(Conflict, match="already revoked"):
        await store.revoke_certificate("1a2b3c", 4, T0 + timedelta(hours=1))
    kept = await store.get_certificate("1a2b3c")
    assert (kept.revocation_reason, kept.revoked_at) == (1, T0)
    with pytest.raises(Conflict, match=r"1a2b3c is (already )?revoked"):  # guards.refused
        await store.store_certificate("1a2b3c", DER)


async def test_revoking_a_reserved_or_unknown_serial_fails(store: Store):
    await store.reserve_serial(make_record())
    with pytest.raises(Conflict, match="reserved, not issued"):
        await store.revoke_certificate("1a2b3c", 0, T0)
    assert (await store.get_certificate("1a2b3c")).status is CertificateStatus.RESERVED
    with pytest.raises(NotFound):
        await store.revoke_certificate("abc", 0, T0)


async def test_list_filters_by_status_and_pages_in_creation_order(store: Store):
    # Created out of serial order, two at the same instant (serial breaks the tie).
    created = {"0e": T0 + timedelta(minutes=2), "0a": T0, "0c": T0, "0b": T0 + timedelta(1)}
    for serial, at in created.items():
        await store.reserve_serial(make_record(serial, created_at=at))
    await store.store_certificate("0c", DER)
    await store.store_certificate("0b", DER)

    first = await store.list_certificates(limit=3)
    assert [r.serial for r in first] == ["0a", "0c", "0e"]
    rest = await store.list_certificates(limit=3, after_serial=first[-1].serial)
    assert [r.serial for r in rest] == ["0b"]
    assert await store.list_certificates(after_serial="0b") == []

    issued_only = await store.list_certificates(status=CertificateStatus.ISSUED, limit=1)
    assert [r.serial for r in issued_only] == ["0c"]
    following = await store.list_certificates(status=CertificateStatus.ISSUED, after_serial="0c")
    assert [r.serial for r in following] == ["0b"]
    assert await store.list_certificates(status=CertificateStatus.REVOKED) == []

    with pytest.raises(NotFound):
        await store.list_certificates(after_serial="99")
    with pytest.raises(ValueError, match="limit"):
        await store.list_certificates(limit=0)


async def test_list_certificates_expiring_within_a_window_pages_like_the_others(
    store: Store
):
    """``certs list --expiring-within``: notAfter after the window's start and at or
    before its end, oldest created first, keyset-paginated, with or without a status."""
    day = timedelta(days=1)
    for n, (serial, ends) in enumerate((("01", 5), ("02", 1), ("03", 7), ("04", 3),
                                        ("05", 9), ("06", 2))):
        await store.reserve_serial(make_record(serial, not_after=T0 + ends * day,
                                               created_at=T0 + n * timedelta(minutes=1)))
        if serial != "04":
            await store.store_certificate(serial, DER)
    window = (T0 + 2 * day, T0 + 7 * day)  # 02 and 06 end at or before it, 05 after
    listed = await store.list_certificates(expiring=window)
    assert [r.serial for r in listed] == ["01", "03", "04"]
    first = await store.list_certificates(expiring=window, limit=2)
    assert [r.serial for r in first] == ["01", "03"]
    rest = await store.list_certificates(expiring=window, limit=2, after_serial="03")
    assert [r.serial for r in rest] == ["04"]
    assert await store.list_certificates(expiring=window, after_serial="04") == []
    # A page key outside the window still places the page: after 02 (created second).
    assert [r.serial for r in await store.list_certificates(
        expiring=window, after_serial="02")] == ["03", "04"]
    issued = await store.list_certificates(status=CertificateStatus.ISSUED, expiring=window)
    assert [r.serial for r in issued] == ["01", "03"]
    assert [r.serial for r in await store.list_certificates(
        status=CertificateStatus.ISSUED, expiring=window, after_serial="01")] == ["03"]
    assert await store.list_certificates(expiring=(T0 + 9 * day, T0 + 99 * day)) == []
    with pytest.raises(ValueError, match="naive"):
        await store.list_certificates(expiring=(datetime(2026, 1, 1), T0))


async def test_latest_expiry_of_an_issuer_counts_every_state_and_only_later_ends(store: Store):
    """What decides when an archived intermediate key may go: the latest notAfter among
    the certificates that intermediate signed, reserved and revoked ones included
    (a CRL lists a revoked certificate until it expires, RFC 5280 3.3)."""
    old, new = "0a" * 32, "0b" * 32
    day = timedelta(days=1)
    await store.reserve_serial(make_record("01", issuer=old, not_after=T0 + 10 * day))
    await store.reserve_serial(make_record("02", issuer=old, not_after=T0 + 30 * day))
    await store.reserve_serial(make_record("03", issuer=new, not_after=T0 + 90 * day))
    await store.store_certificate("01", DER)
    await store.revoke_certificate("01", 1, T0)
    assert await store.latest_expiry(old, after=T0) == T0 + 30 * day  # "02" only reserved
    assert await store.latest_expiry(old, after=T0 + 30 * day) is None  # ended by then
    assert await store.latest_expiry(new, after=T0) == T0 + 90 * day
    assert await store.latest_expiry("0c" * 32, after=T0) is None


async def test_two_stores_revoking_the_same_serial_at_once_exactly_one_wins(
    store: Store, other: Store
):
    await issued(store)
    results = await asyncio.gather(
        store.revoke_certificate("1a2b3c", 1, T0),
        other.revoke_certificate("1a2b3c", 4, T0 + timedelta(seconds=1)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, CertificateRecord)]
    losers = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert await store.get_certificate("1a2b3c") == winners[0]


async def test_racing_calls_on_one_store_are_serialised(store: Store):
    await store.reserve_serial(make_record())
    results = await asyncio.gather(
        *(store.store_certificate("1a2b3c", bytes([n])) for n in range(5)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, CertificateRecord)]
    assert len(winners) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 4
    assert (await store.get_certificate("1a2b3c")).der == winners[0].der
