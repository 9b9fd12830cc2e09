"""What relying parties learn of revocation and clients of renewal (``RevocationStore``):
the revoked certificates one issuer's CRL lists, the CRL every replica serves, whose
number only grows (RFC 5280 5.2.3), and the operator's marks for early renewal that
ARI (RFC 9773 4.2) turns into a window in the past."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from acme_ca.domain.models import CertificateRecord, CrlRecord, RevokedEntry
from acme_ca.errors import Conflict, NotFound
from acme_ca.store import Store
from tests.store.conftest import DER, T0, make_record

ISSUER = "ab" * 32  # make_record's issuer
OTHER_ISSUER = "cd" * 32
DAY = timedelta(days=1)


async def signed(store: Store, serial: str, **changes: object) -> CertificateRecord:
    await store.reserve_serial(make_record(serial, **changes))
    return await store.store_certificate(serial, DER)


def crl(number: int, issuer: str = ISSUER, **changes: object) -> CrlRecord:
    record = CrlRecord(issuer=issuer, number=number, this_update=T0 + number * DAY,
                       next_update=T0 + (number + 7) * DAY, entries=f"digest-{number}",
                       der=b"\x30\x82" + bytes([number % 256]) * 40)
    return replace(record, **changes)  # type: ignore[arg-type]


# --- the revoked certificates a CRL lists ---------------------------------------------


async def test_revoked_certificates_lists_one_issuers_unexpired_revocations(store: Store):
    """RFC 5280 5.1.2.6 and 3.3: a CRL lists the revoked certificates its issuer signed,
    with the revocation date and the reason; an expired certificate may leave it."""
    await signed(store, "0c", not_after=T0 + 30 * DAY)
    await signed(store, "0a", not_after=T0 + 10 * DAY)
    await signed(store, "0b", not_after=T0 + 5 * DAY)   # expires at the cut: left out
    await signed(store, "0d", issuer=OTHER_ISSUER)      # another issuer's CRL
    await signed(store, "0e")                           # issued, not revoked
    await store.reserve_serial(make_record("0f"))       # never signed
    for serial, reason in (("0c", 1), ("0a", 0), ("0b", 4), ("0d", 1)):
        await store.revoke_certificate(serial, reason, T0 + DAY)
    listed = await store.revoked_certificates(ISSUER, expiring_after=T0 + 5 * DAY)
    assert listed == [
        RevokedEntry(serial="0a", revoked_at=T0 + DAY, reason=0, not_after=T0 + 10 * DAY),
        RevokedEntry(serial="0c", revoked_at=T0 + DAY, reason=1, not_after=T0 + 30 * DAY),
    ]
    assert [e.serial for e in await store.revoked_certificates(
        ISSUER, expiring_after=T0 + 5 * DAY - timedelta(microseconds=1))] == ["0a", "0b", "0c"]
    assert [e.serial for e in await store.revoked_certificates(
        OTHER_ISSUER, expiring_after=T0)] == ["0d"]
    assert await store.revoked_certificates("ef" * 32, expiring_after=T0) == []


async def test_revoked_issuers_names_each_issuer_of_an_unexpired_revocation(store: Store):
    """RFC 5280 5: every revoked unexpired certificate must reach a CRL, also one whose
    issuer fingerprint no intermediate the server holds has (re-signed with the same
    key): each such issuer, with one of its serials to read the certificate by."""
    await signed(store, "0c", not_after=T0 + 30 * DAY)
    await signed(store, "0a", not_after=T0 + 10 * DAY)
    await signed(store, "0b", not_after=T0 + 5 * DAY)   # expires at the cut
    await signed(store, "0d", issuer=OTHER_ISSUER, not_after=T0 + 5 * DAY)
    await signed(store, "0e", issuer="ef" * 32)         # issued, not revoked
    await store.reserve_serial(make_record("0f"))       # never signed
    for serial in ("0c", "0a", "0b", "0d"):
        await store.revoke_certificate(serial, 1, T0 + DAY)
    assert await store.revoked_issuers(expiring_after=T0 + 5 * DAY) == {ISSUER: "0a"}
    assert await store.revoked_issuers(
        expiring_after=T0 + 5 * DAY - timedelta(microseconds=1)) == {
            ISSUER: "0a", OTHER_ISSUER: "0d"}
    assert await store.revoked_issuers(expiring_after=T0 + 31 * DAY) == {}


async def test_revoked_summary_counts_the_rows_revoked_certificates_lists(store: Store):
    """RFC 5280 5.1.2.6: a CRL builder learns whether the list it would publish changed
    without reading it: the number of rows ``revoked_certificates`` returns for the same
    issuer and cut, and their latest revocation date; (0, None) when none."""
    assert await store.revoked_summary(ISSUER, expiring_after=T0) == (0, None)
    await signed(store, "0c", not_after=T0 + 30 * DAY)
    await signed(store, "0a", not_after=T0 + 10 * DAY)
    await signed(store, "0b", not_after=T0 + 5 * DAY)   # expires at the cut: not counted
    await signed(store, "0d", issuer=OTHER_ISSUER)      # another issuer's
    await signed(store, "0e")                           # issued, not revoked
    await store.revoke_certificate("0a", 0, T0 + DAY)
    await store.revoke_certificate("0b", 4, T0 + 3 * DAY)
    await store.revoke_certificate("0d", 1, T0 + 4 * DAY)
    cut = T0 + 5 * DAY
    assert await store.revoked_summary(ISSUER, expiring_after=cut) == (1, T0 + DAY)
    await store.revoke_certificate("0c", 1, T0 + 2 * DAY)
    summary = await store.revoked_summary(ISSUER, expiring_after=cut)
    assert summary == (2, T0 + 2 * DAY)
    assert summary[0] == len(await store.revoked_certificates(ISSUER, expiring_after=cut))
    assert await store.revoked_summary(
        ISSUER, expiring_after=cut - timedelta(microseconds=1)) == (3, T0 + 3 * DAY)
    assert await store.revoked_summary(OTHER_ISSUER, expiring_after=T0) == (1, T0 + 4 * DAY)
    latest = (await store.revoked_summary(ISSUER, expiring_after=cut))[1]
    assert latest is not None and latest.utcoffset() == timedelta(0)


# --- the CRL every replica serves ------------------------------------------------------


async def test_a_published_crl_is_read_back_by_every_store(store: Store, other: Store):
    assert await store.get_crl(ISSUER) is None
    await store.publish_crl(crl(1))
    assert await other.get_crl(ISSUER) == crl(1)
    fetched = await other.get_crl(ISSUER)
    assert fetched is not None and isinstance(fetched.der, bytes)
    assert fetched.this_update.utcoffset() == timedelta(0)
    await other.publish_crl(crl(2))
    assert await store.get_crl(ISSUER) == crl(2)
    assert await store.get_crl(OTHER_ISSUER) is None


async def test_get_crl_without_der_reads_all_but_the_der(store: Store, other: Store):
    """A builder checks every round whether a CRL is due: its number, times and digest,
    without the DER (megabytes with many revocations)."""
    assert await store.get_crl(ISSUER, der=False) is None
    await store.publish_crl(crl(3))
    assert await other.get_crl(ISSUER, der=False) == replace(crl(3), der=b"")
    assert await other.get_crl(ISSUER) == crl(3)


async def test_crl_number_finds_a_crl_by_issuer_id_without_its_der(store: Store, other: Store):
    """RFC 5280 5.2.3: the number a replica compares with the CRL it holds, and the
    fingerprint a CRL URL's issuer id (the first 16 hex digits) names, for a CRL any
    replica published; None for an id no CRL has (a prefix of the id, another issuer,
    a NUL) and before the first CRL."""
    assert await store.crl_number(ISSUER[:16]) is None
    await store.publish_crl(crl(1))
    await store.publish_crl(crl(3, OTHER_ISSUER))
    assert await other.crl_number(ISSUER[:16]) == (ISSUER, 1)
    await other.publish_crl(crl(2))
    assert await store.crl_number(ISSUER[:16]) == (ISSUER, 2)
    assert await store.crl_number(OTHER_ISSUER[:16]) == (OTHER_ISSUER, 3)
    for unknown in (ISSUER[:15], ISSUER[:17], "ef" * 8, "%" * 16, "ab\x00" * 4):
        assert await store.crl_number(unknown) is None


@pytest.mark.parametrize("number", [1, 2])
async def test_a_crl_number_that_does_not_grow_is_refused_and_changes_nothing(
    store: Store, number: int
):
    """RFC 5280 5.2.3: the CRL number is monotonically increasing for one issuer, so a
    CRL with the number published (or a lower one) is refused: ``Conflict``."""
    await store.publish_crl(crl(2))
    with pytest.raises(Conflict, match=r"CRL number .* not greater .*\(2\)"):
        await store.publish_crl(crl(number, entries="late", der=b"\x30\x00"))
    assert await store.get_crl(ISSUER) == crl(2)
    await store.publish_crl(crl(1, OTHER_ISSUER))  # each issuer has its own numbers
    assert (await store.get_crl(OTHER_ISSUER)) == crl(1, OTHER_ISSUER)


async def test_two_replicas_publishing_the_next_number_at_once_one_wins(
    store: Store, other: Store
):
    """RFC 5280 5.2.3 across replicas: two builders (a lease holder and the one it
    replaced) publish number n+1 at the same moment; exactly one CRL is stored with it,
    the other gets ``Conflict``, both for the first CRL and for a later one."""
    for round_ in range(6):
        issuer = f"{round_:02x}" * 32
        if round_ % 2:
            await store.publish_crl(crl(5, issuer))
        number = 6 if round_ % 2 else 1
        mine = crl(number, issuer, entries="mine")
        theirs = crl(number, issuer, entries="theirs")
        results = await asyncio.gather(store.publish_crl(mine), other.publish_crl(theirs),
                                       return_exceptions=True)
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(lost) == 1 and isinstance(lost[0], Conflict), results
        stored = await store.get_crl(issuer)
        winner = mine if results[0] is None else theirs
        assert stored == winner


# --- marks for early renewal (ARI) -------------------------------------------------------


async def test_mark_renew_early_marks_a_signed_certificate_and_the_earliest_mark_stands(
    store: Store, other: Store
):
    """RFC 9773 4.2: a certificate the operator wants renewed early gets a window in
    the past; marking it again does not move that window later."""
    await signed(store, "0a")
    assert (await store.get_certificate("0a")).renew_early_at is None
    marked = await store.mark_renew_early("0a", T0 + DAY)
    assert marked.renew_early_at == T0 + DAY
    assert marked == await other.get_certificate("0a")
    assert (await other.mark_renew_early("0a", T0 + 2 * DAY)).renew_early_at == T0 + DAY
    assert (await store.mark_renew_early("0a", T0)).renew_early_at == T0
    await signed(store, "0b")
    await store.revoke_certificate("0b", 1, T0)  # a revoked one may be marked too
    assert (await store.mark_renew_early("0b", T0 + DAY)).renew_early_at == T0 + DAY


async def test_mark_renew_early_refuses_an_unknown_or_unsigned_serial(store: Store):
    with pytest.raises(NotFound, match="no certificate with serial 0a"):
        await store.mark_renew_early("0a", T0)
    with pytest.raises(NotFound):
        await store.mark_renew_early("0a\x00", T0)
    await store.reserve_serial(make_record("0b"))
    with pytest.raises(Conflict, match="0b is reserved"):
        await store.mark_renew_early("0b", T0)
    assert (await store.get_certificate("0b")).renew_early_at is None


async def test_mark_renew_early_issued_before_marks_the_signed_unexpired_ones_once(
    store: Store, other: Store
):
    """An intermediate rotated, or a key compromised: every signed certificate issued
    before a date and still valid gets a window in the past (RFC 9773 4.2). Safe to
    run twice: the second run marks none and moves no mark."""
    await signed(store, "01", created_at=T0)                           # marked
    await signed(store, "02", created_at=T0 + DAY)                     # marked
    await signed(store, "03", created_at=T0 + 2 * DAY)                 # at `before`: not
    await signed(store, "04", created_at=T0, not_after=T0 + 3 * DAY)   # expired: not
    await signed(store, "05", created_at=T0)
    await store.revoke_certificate("05", 1, T0)                        # revoked: marked
    await store.reserve_serial(make_record("06", created_at=T0))       # unsigned: not
    await signed(store, "07", created_at=T0)
    await store.mark_renew_early("07", T0 + DAY)                       # marked: kept
    before, at, now = T0 + 2 * DAY, T0 + 4 * DAY, T0 + 3 * DAY
    assert await store.mark_renew_early_issued_before(before, at, unexpired_at=now) == 3
    marks = {serial: (await other.get_certificate(serial)).renew_early_at
             for serial in ("01", "02", "03", "04", "05", "06", "07")}
    assert marks == {"01": at, "02": at, "03": None, "04": None, "05": at, "06": None,
                     "07": T0 + DAY}
    later = T0 + 5 * DAY
    assert await other.mark_renew_early_issued_before(before, later, unexpired_at=now) == 0
    assert (await store.get_certificate("01")).renew_early_at == at
