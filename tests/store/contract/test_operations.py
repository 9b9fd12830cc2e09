"""What operators look at (``OperationsStore``, issue 13 items 5 and 6): the lists of
``acme-ca accounts list`` and ``orders list`` (newest first, a page at a time), the
account counts, the issuance rate by hour of the dashboard's chart, and its failed
validations by reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from acme_ca.domain.models import (
    AccountStatus,
    AuthorizationStatus,
    ChallengeStatus,
    OrderStatus,
)
from acme_ca.store import Store
from acme_ca.store.operations import FailedValidations
from tests.store.conftest import (
    ACCOUNT,
    DER,
    OTHER,
    T0,
    make_account,
    make_authorization,
    make_order,
    make_record,
    validating,
)

MINUTE = timedelta(minutes=1)
US = timedelta(microseconds=1)
HOUR0 = datetime(2026, 1, 1, 12, tzinfo=UTC)  # the hour T0 falls in
UNAUTHORIZED = "urn:ietf:params:acme:error:unauthorized"
CONNECTION = "urn:ietf:params:acme:error:connection"


def problem(kind: str) -> str:
    return '{"type":"' + kind + '","detail":"it failed"}'


# --- accounts --------------------------------------------------------------------------


async def test_accounts_are_listed_newest_first_a_page_at_a_time(store: Store):
    """``acme-ca accounts list``: newest first; the next page is the one before the last
    account read. ACCOUNT and OTHER were created at T0 (``with_accounts``)."""
    for n in range(1, 6):
        await store.create_account(make_account(f"a{n}", created_at=T0 + n * MINUTE))
    assert [a.id for a in await store.list_accounts()] == [
        "a5", "a4", "a3", "a2", "a1", OTHER, ACCOUNT]
    first = await store.list_accounts(limit=2)
    assert [a.id for a in first] == ["a5", "a4"]
    second = await store.list_accounts(before=first[-1].created_at, limit=2)
    assert [a.id for a in second] == ["a3", "a2"]
    assert [a.id for a in await store.list_accounts(before=T0 + MINUTE)] == [OTHER, ACCOUNT]
    assert await store.list_accounts(before=T0) == []
    assert [a.id for a in await store.list_accounts(before=T0 + US)] == [OTHER, ACCOUNT]


async def test_accounts_created_in_one_microsecond_are_paged_by_id(store: Store):
    """Rows with one ``created_at`` are neither skipped nor repeated across pages when
    the page ends at the last row's time and id (``before_id``)."""
    for n in range(5):
        await store.create_account(make_account(f"b{n}", created_at=T0 + MINUTE))
    seen: list[str] = []
    before, before_id = None, None
    while page := await store.list_accounts(before=before, before_id=before_id, limit=2):
        seen += [a.id for a in page]
        before, before_id = page[-1].created_at, page[-1].id
    assert seen == ["b4", "b3", "b2", "b1", "b0", OTHER, ACCOUNT]
    with pytest.raises(ValueError):
        await store.list_accounts(before_id="b3")


async def test_accounts_by_status_and_their_counts(store: Store):
    await store.create_account(make_account("gone", created_at=T0 + MINUTE))
    await store.create_account(make_account("gone2", created_at=T0 + 2 * MINUTE))
    for account_id in ("gone", "gone2"):
        await store.update_account(account_id, expected_status=AccountStatus.VALID,
                                   status=AccountStatus.DEACTIVATED)
    assert await store.count_accounts() == {AccountStatus.VALID: 2,
                                            AccountStatus.DEACTIVATED: 2}
    assert [a.id for a in await store.list_accounts(status=AccountStatus.DEACTIVATED)] == [
        "gone2", "gone"]
    assert [a.id for a in await store.list_accounts(
        status=AccountStatus.DEACTIVATED, before=T0 + 2 * MINUTE)] == ["gone"]
    assert [a.id for a in await store.list_accounts(status=AccountStatus.VALID)] == [
        OTHER, ACCOUNT]
    assert await store.list_accounts(status=AccountStatus.REVOKED) == []
    with pytest.raises(ValueError):
        await store.list_accounts(limit=0)


async def test_no_accounts_count_nothing(backend):
    store = await backend.open()
    assert await store.count_accounts() == {}
    assert await store.list_accounts() == []


# --- orders ----------------------------------------------------------------------------


async def orders(store: Store) -> None:
    """o1..o4 of ACCOUNT a minute apart, o5 of OTHER; o2 is ready."""
    for n in range(1, 6):
        account = OTHER if n == 5 else ACCOUNT
        authz = make_authorization(f"az{n}", f"n{n}.example.test", account_id=account)
        order = make_order(f"o{n}", [authz], account_id=account, created_at=T0 + n * MINUTE,
                           status=OrderStatus.READY if n == 2 else OrderStatus.PENDING)
        await store.create_order(order, [authz])


async def test_orders_are_listed_newest_first_with_their_authorizations(store: Store):
    """``acme-ca orders list``: newest first, each order whole (its authorizations)."""
    await orders(store)
    listed = await store.list_orders()
    assert [o.id for o in listed] == ["o5", "o4", "o3", "o2", "o1"]
    assert listed[0] == await store.get_order("o5")
    assert listed[0].authorization_ids == ("az5",)
    page = await store.list_orders(limit=2)
    assert [o.id for o in page] == ["o5", "o4"]
    assert [o.id for o in await store.list_orders(before=page[-1].created_at, limit=2)] == [
        "o3", "o2"]
    assert [o.id for o in await store.list_orders(
        before=page[-1].created_at, before_id=page[-1].id, limit=2)] == ["o3", "o2"]


async def test_orders_filtered_by_account_and_status(store: Store):
    await orders(store)
    assert [o.id for o in await store.list_orders(account_id=ACCOUNT)] == [
        "o4", "o3", "o2", "o1"]
    assert [o.id for o in await store.list_orders(account_id=OTHER)] == ["o5"]
    assert [o.id for o in await store.list_orders(account_id="nobody")] == []
    assert [o.id for o in await store.list_orders(status=OrderStatus.READY)] == ["o2"]
    assert [o.id for o in await store.list_orders(account_id=ACCOUNT,
                                                  status=OrderStatus.PENDING,
                                                  before=T0 + 4 * MINUTE)] == ["o3", "o1"]
    assert await store.list_orders(account_id=OTHER, status=OrderStatus.READY) == []
    with pytest.raises(ValueError):
        await store.list_orders(before_id="o3")


# --- issuance by hour ------------------------------------------------------------------


async def signed(store: Store, serial: str, created_at: datetime) -> None:
    await store.reserve_serial(make_record(serial, created_at=created_at))
    await store.store_certificate(serial, DER)


async def test_issuances_are_counted_by_utc_hour(store: Store):
    """The dashboard's issuance rate: certificates signed (issued or revoked) by the UTC
    hour of ``created_at``; an hour starts at :00:00.000000 and ends just before the
    next; a reserved certificate (never signed) is not counted."""
    await signed(store, "01", HOUR0)                          # the first microsecond
    await signed(store, "02", HOUR0 + timedelta(minutes=59, seconds=59, microseconds=999999))
    await signed(store, "03", HOUR0 + timedelta(hours=1))     # the next hour's first
    await signed(store, "04", HOUR0 + timedelta(hours=3, minutes=30))
    await store.revoke_certificate("04", 1, HOUR0 + timedelta(hours=4))   # still counted
    await store.reserve_serial(make_record("05", created_at=HOUR0 + timedelta(minutes=5)))
    await signed(store, "06", HOUR0 - US)                     # before `since`
    counts = await store.issuance_counts(HOUR0)
    assert counts == {HOUR0: 2, HOUR0 + timedelta(hours=1): 1,
                      HOUR0 + timedelta(hours=3): 1}
    assert all(hour.utcoffset() == timedelta(0) for hour in counts)
    assert list(counts) == sorted(counts)
    # `since` inside an hour counts from that moment on, still under the hour's start.
    assert await store.issuance_counts(HOUR0 + US) == {
        HOUR0: 1, HOUR0 + timedelta(hours=1): 1, HOUR0 + timedelta(hours=3): 1}
    assert await store.issuance_counts(HOUR0 - US) == {
        HOUR0 - timedelta(hours=1): 1, HOUR0: 2, HOUR0 + timedelta(hours=1): 1,
        HOUR0 + timedelta(hours=3): 1}
    assert await store.issuance_counts(HOUR0 + timedelta(hours=4)) == {}


async def test_issuance_hours_are_utc_whatever_the_zone_asked_in(store: Store):
    """A certificate created at 00:30 UTC is in the 00:00 UTC hour, even when ``since``
    is given in a zone where that is another day."""
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    await signed(store, "0a", midnight + timedelta(minutes=30))
    since = (midnight - timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5, minutes=-30)))
    assert await store.issuance_counts(since) == {midnight: 1}


# --- the dashboard's recent revocations -------------------------------------------------


async def test_latest_revocations_newest_first_unexpired_only_and_counted(store: Store):
    """Review of issue 13 item 6 (the dashboard read every revoked certificate to show
    eight): ``latest_revocations`` returns the unexpired revoked certificates (what the
    CRLs list), of every issuer, latest revoked first (then serial, descending), at most
    ``limit``; ``count_revocations`` counts them all."""
    revoked = {"0a": (MINUTE, 10), "0b": (3 * MINUTE, 10), "0c": (3 * MINUTE, 10),
               "0d": (2 * MINUTE, 1), "0e": (4 * MINUTE, 10)}  # serial: (revoked, days)
    for serial, (at, days) in revoked.items():
        issuer = "cd" * 32 if serial == "0e" else "ab" * 32
        await store.reserve_serial(make_record(
            serial, issuer=issuer, not_after=T0 + timedelta(days=days)))
        await store.store_certificate(serial, DER)
        await store.revoke_certificate(serial, 1, T0 + at)
    await store.reserve_serial(make_record("0f"))  # issued, not revoked
    await store.store_certificate("0f", DER)
    now = T0 + timedelta(days=2)  # 0d has expired
    latest = await store.latest_revocations(expiring_after=now, limit=3)
    assert [r.serial for r in latest] == ["0e", "0c", "0b"]
    assert latest[0].revoked_at == T0 + 4 * MINUTE and latest[0].revocation_reason == 1
    assert latest[0].names == make_record().names
    assert [r.serial for r in await store.latest_revocations(expiring_after=now, limit=9)
            ] == ["0e", "0c", "0b", "0a"]
    assert await store.count_revocations(expiring_after=now) == 4
    assert await store.count_revocations(expiring_after=T0) == 5
    assert await store.latest_revocations(expiring_after=T0 + timedelta(days=11),
                                          limit=5) == []
    assert await store.count_revocations(expiring_after=T0 + timedelta(days=11)) == 0
    with pytest.raises(ValueError):
        await store.latest_revocations(expiring_after=now, limit=0)


# --- failed validations ----------------------------------------------------------------


async def challenges(store: Store, authz_id: str, outcomes: dict[str, tuple[str, str | None,
                                                                            datetime | None]]
                     ) -> None:
    """An authorization with one challenge per type, each (status, error, validated_at)."""
    authz = make_authorization(authz_id, f"{authz_id}.example.test", types=tuple(outcomes),
                               status=AuthorizationStatus.INVALID)
    authz = replace(authz, challenges=tuple(
        replace(c, status=ChallengeStatus(outcomes[c.type][0]), error=outcomes[c.type][1],
                validated_at=outcomes[c.type][2]) for c in authz.challenges))
    await store.create_order(make_order(f"order-{authz_id}", [authz]), [authz])


async def test_failed_validations_by_challenge_type_and_problem_type(store: Store):
    """The dashboard's "failed validations by reason": invalid challenges since a moment
    (``validated_at``), by challenge type and the type of their error, largest first."""
    at = T0 + timedelta(hours=1)
    for n in range(3):
        await challenges(store, f"h{n}", {"http-01": ("invalid", problem(UNAUTHORIZED), at),
                                          "dns-01": ("pending", None, None)})
    await challenges(store, "c", {"http-01": ("invalid", problem(CONNECTION), at),
                                  "dns-01": ("invalid", problem(UNAUTHORIZED), at),
                                  "tls-alpn-01": ("invalid", problem(CONNECTION), at)})
    await challenges(store, "old", {"http-01": ("invalid", problem(CONNECTION), at - US)})
    await challenges(store, "ok", {"http-01": ("valid", None, at + MINUTE)})
    await challenges(store, "bare", {"dns-01": ("invalid", '{"detail":"no type"}', at),
                                     "http-01": ("invalid", None, at)})
    assert await store.failed_validations(at) == [
        FailedValidations("http-01", UNAUTHORIZED, 3),
        FailedValidations("dns-01", "about:blank", 1),
        FailedValidations("dns-01", UNAUTHORIZED, 1),
        FailedValidations("http-01", "about:blank", 1),
        FailedValidations("http-01", CONNECTION, 1),
        FailedValidations("tls-alpn-01", CONNECTION, 1),
    ]
    assert FailedValidations("http-01", CONNECTION, 2) in await store.failed_validations(
        at - US)
    assert await store.failed_validations(at + US) == []


async def test_a_validation_recorded_invalid_is_counted(store: Store):
    """Through the path a real validation takes: pending, processing, then recorded
    invalid with the problem the validator found."""
    authz = make_authorization("az-r", "r.example.test", types=("dns-01",))
    await store.create_order(make_order("order-r", [authz]), [authz])
    await validating(store, "az-r-dns-01")
    await store.record_validation("az-r-dns-01", valid=False, error=problem(UNAUTHORIZED),
                                  validated_at=T0 + MINUTE, authorization_expires=None)
    assert await store.failed_validations(T0) == [
        FailedValidations("dns-01", UNAUTHORIZED, 1)]


async def test_an_error_that_is_not_json_counts_as_about_blank(store: Store):
    """Issue 13 item 4's review (store): one challenge whose error is not JSON (written
    by an older version, or by hand) counts as about:blank; it does not fail the read of
    every other one (PostgreSQL cast it to jsonb, SQLite guarded with json_valid)."""
    at = T0 + timedelta(hours=1)
    await challenges(store, "j", {"http-01": ("invalid", "connection refused", at),
                                  "dns-01": ("invalid", problem(UNAUTHORIZED), at)})
    assert await store.failed_validations(at) == [
        FailedValidations("dns-01", UNAUTHORIZED, 1),
        FailedValidations("http-01", "about:blank", 1)]
