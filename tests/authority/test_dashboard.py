"""What the dashboard reads and the one thing it changes (issue 13 item 6): certificates
expiring soon, the issuance rate hour by hour over the last day, recent revocations,
accounts page by page, EAB key states, and the operator's revocation; the key of the
confirmation forms, shared by every worker through the data directory."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from acme_ca.authority.dashboard import (
    EXPIRING_READ,
    LIST_LIMIT,
    RATE_HOURS,
    Dashboard,
    eab_state,
    form_key,
    hour_start,
)
from acme_ca.authority.revocation import RevocationService
from acme_ca.clock import FakeClock
from acme_ca.domain.models import CertificateStatus, EabKey
from acme_ca.errors import Conflict, NotFound, PkiError
from acme_ca.store import Store
from bench.dashboard_reads import RowsRead
from tests.store.conftest import ACCOUNT, DER, T0, make_account, make_record

NOW = T0 + timedelta(days=10, minutes=30)  # 2026-01-11 12:30:00.123456 UTC


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def dashboard(store: Store, clock: FakeClock) -> Dashboard:
    await store.create_account(make_account())
    return Dashboard(store, clock, RevocationService(store, clock))


async def signed(store: Store, serial: str, **changes: object) -> None:
    """A certificate record, reserved then stored (ISSUED), as finalize leaves it."""
    await store.reserve_serial(make_record(serial, **changes))
    await store.store_certificate(serial, DER)


async def test_issuance_is_counted_hour_by_hour_over_the_last_day(
        dashboard: Dashboard, store: Store):
    """Issue 13 item 6, "issuance rate over the last day as a chart": one count per UTC
    hour, the current one last, zeros where nothing was signed; a reserved serial (never
    signed) and a certificate older than the day are left out; a revoked one was signed
    and counts."""
    await signed(store, "a1", created_at=NOW)
    await signed(store, "a2", created_at=NOW - timedelta(minutes=20))
    await signed(store, "b0", created_at=NOW - timedelta(hours=5))
    await signed(store, "c1", created_at=NOW - timedelta(hours=23, minutes=30))
    await signed(store, "d0", created_at=NOW - timedelta(hours=25))
    await store.reserve_serial(make_record("e0", created_at=NOW))
    await signed(store, "f0", created_at=NOW - timedelta(hours=5))
    await store.revoke_certificate("f0", 1, NOW)

    hours = await dashboard.issuance()

    assert len(hours) == RATE_HOURS
    assert hours[-1].start == hour_start(NOW)
    assert [h.start for h in hours] == [hour_start(NOW) - timedelta(hours=RATE_HOURS - 1 - n)
                                        for n in range(RATE_HOURS)]
    counts = {h.start: h.count for h in hours if h.count}
    assert counts == {hour_start(NOW): 2, hour_start(NOW - timedelta(hours=5)): 2,
                      hour_start(NOW - timedelta(hours=23)): 1}


async def test_expiring_soon_is_issued_within_thirty_days_soonest_first(
        dashboard: Dashboard, store: Store):
    """Only ISSUED certificates whose notAfter is between now and 30 days from now, the
    soonest first; expired, revoked, reserved and later ones are not expiring soon."""
    await signed(store, "1a7e", not_after=NOW + timedelta(days=20))
    await signed(store, "5005", not_after=NOW + timedelta(hours=3))
    await signed(store, "fa", not_after=NOW + timedelta(days=31))
    await signed(store, "e1", not_after=NOW - timedelta(hours=1))
    await signed(store, "ee", not_after=NOW + timedelta(days=2))
    await store.revoke_certificate("ee", 0, NOW)
    await store.reserve_serial(make_record("e0", not_after=NOW + timedelta(days=1)))

    expiring = await dashboard.expiring()

    assert [r.serial for r in expiring.rows] == ["5005", "1a7e"]
    assert not expiring.more


async def test_expiring_soon_says_when_it_stopped_reading(dashboard: Dashboard, store: Store):
    """A page costs a bounded read: past EXPIRING_READ certificates the list stops and
    says there are more."""
    for n in range(EXPIRING_READ + 1):
        await signed(store, f"{n:x}", not_after=NOW + timedelta(days=1, minutes=n))
    expiring = await dashboard.expiring()
    assert len(expiring.rows) == EXPIRING_READ and expiring.more


async def test_revocations_latest_first_with_names_and_total(dashboard: Dashboard, store: Store):
    """Recent revocations: the revoked certificates a CRL lists (not expired), the
    latest revoked first, with their names, and how many there are."""
    for serial, hours_ago in (("b1", 30), ("b2", 1), ("b3", 5)):
        await signed(store, serial, names=(f"{serial}.example.test",))
        await store.revoke_certificate(serial, 4, NOW - timedelta(hours=hours_ago))
    await signed(store, "de", not_after=NOW - timedelta(days=1))
    await store.revoke_certificate("de", 1, NOW - timedelta(days=2))
    await signed(store, "ce")

    revoked = await dashboard.revocations(limit=2)

    assert [(r.serial, r.names, r.reason) for r in revoked.rows] == [
        ("b2", ("b2.example.test",), 4), ("b3", ("b3.example.test",), 4)]
    assert revoked.total == 3 and revoked.more


async def test_revocations_read_only_the_rows_shown(store: Store, clock: FakeClock):
    """Review of issue 13 item 6 (medium): the overview and the revocations page read
    every unexpired revoked certificate (the CRL's read) and sorted them on the event
    loop, 1-2 s at 100k revocations, a number any ACME account can grow. They now read
    the latest ``limit`` (``latest_revocations``) and count the rest in the database."""
    for n in range(40):
        await signed(store, f"{n + 16:x}")
        await store.revoke_certificate(f"{n + 16:x}", 1, NOW - timedelta(minutes=n))
    spy = RowsRead(store)
    dashboard = Dashboard(spy, clock, RevocationService(store, clock))  # type: ignore[arg-type]
    revoked = await dashboard.revocations(limit=3)
    assert [r.serial for r in revoked.rows] == ["10", "11", "12"]
    assert revoked.more and revoked.total == 40
    assert spy.most <= 3


async def test_the_operator_revokes_with_a_named_reason(dashboard: Dashboard, store: Store):
    """Issue 13 item 6, "revoke a certificate from its page": through
    RevocationService.revoke_by_operator, the reason chosen by its RFC 5280 name."""
    await signed(store, "c0ffee")
    record = await dashboard.revoke("c0ffee", "keyCompromise")
    assert (record.status, record.revocation_reason, record.revoked_at) == (
        CertificateStatus.REVOKED, 1, NOW)
    assert (await store.get_certificate("c0ffee")).status is CertificateStatus.REVOKED
    with pytest.raises(Conflict, match="already revoked"):
        await dashboard.revoke("c0ffee", "superseded")
    with pytest.raises(NotFound, match="no certificate has the serial 5e"):
        await dashboard.revoke("5e", "superseded")
    await signed(store, "beef")
    for refused in ("cACompromise", "certificateHold", "", "1"):
        with pytest.raises(ValueError, match="not a reason an operator may give"):
            await dashboard.revoke("beef", refused)
    assert (await store.get_certificate("beef")).status is CertificateStatus.ISSUED


async def test_accounts_page_by_page_newest_first(dashboard: Dashboard, store: Store):
    """The accounts list is paged by the last account's (created_at, id): accounts
    created in one instant are neither skipped nor repeated."""
    for n in range(LIST_LIMIT + 5):
        await store.create_account(make_account(f"acct-{n + 10:03d}",
                                                thumbprint=f"t-{n}", created_at=NOW))
    first = await dashboard.accounts()
    assert len(first.rows) == LIST_LIMIT and first.more
    last = first.rows[-1]
    second = await dashboard.accounts(before=(last.created_at, last.id))
    assert not second.more
    ids = [a.id for a in first.rows + second.rows]
    assert len(ids) == len(set(ids)) == LIST_LIMIT + 6  # and ACCOUNT, created at T0
    assert ids[-1] == ACCOUNT
    assert (await dashboard.account_counts()) == {"valid": LIST_LIMIT + 6}


def test_eab_key_states():
    key = EabKey("kid", "team", b"k" * 32, T0, expires=NOW + timedelta(days=1))
    assert eab_state(key, NOW) == "unused"
    assert eab_state(replace(key, account_id=ACCOUNT), NOW) == "bound"
    assert eab_state(key, NOW + timedelta(days=2)) == "expired"
    assert eab_state(replace(key, revoked_at=NOW), NOW) == "revoked"


def test_form_key_is_made_once_private_and_shared(tmp_path: Path):
    """Every worker of a host reads the one key (a form one worker showed, another
    accepts), kept 0600 and made once; a truncated key file is refused, not used."""
    data_dir = tmp_path / "data"
    first = form_key(data_dir)
    assert len(first) == 32
    assert form_key(data_dir) == first  # a second worker, a restart
    path = data_dir / "dashboard.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(PkiError, match="holds 5 bytes, not 32"):
        form_key(data_dir)


def _mode(path: Path, mode: int) -> None:
    path.write_bytes(b"k" * 32)
    path.chmod(mode)


def _other_owner(path: Path) -> None:
    path.write_bytes(b"k" * 32)
    path.chmod(0o600)
    os.chown(path, 65534, 65534)


@pytest.mark.parametrize(("case", "make", "says"), [
    ("world-readable", lambda p: _mode(p, 0o644), "has mode 0644"),
    ("group-readable", lambda p: _mode(p, 0o640), "has mode 0640"),
    ("symlink to a key", lambda p: (_mode(p.with_name("real"), 0o600),
                                    p.symlink_to(p.with_name("real"))), "symbolic link"),
    ("symlink to /etc/passwd", lambda p: p.symlink_to("/etc/passwd"), "symbolic link"),
    ("dangling symlink", lambda p: p.symlink_to(p.with_name("nowhere")), "symbolic link"),
    ("a directory", lambda p: p.mkdir(), "not a regular file"),
    ("a fifo", lambda p: os.mkfifo(p, 0o600), "not a regular file"),
    ("too long", lambda p: (p.write_bytes(b"k" * 64), p.chmod(0o600)), "64 bytes, not 32"),
    pytest.param("another owner", _other_owner, "owned by uid 65534",
                 marks=pytest.mark.skipif(os.geteuid() != 0,
                                          reason="only root gives a file to another user")),
])
def test_form_key_file_is_trusted_only_as_made(tmp_path: Path, case: str, make: Any,
                                               says: str | None):
    """Review of issue 13 item 6 (low): ``dashboard.key`` was read whatever it was (a
    link to another file, readable by all, a directory: a traceback). Only a regular
    0600 file of this user of the key's length is used; anything else is one line that
    names the file."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make(data_dir / "dashboard.key")
    with pytest.raises(PkiError) as refused:
        form_key(data_dir)
    message = str(refused.value)
    assert str(data_dir / "dashboard.key") in message and "\n" not in message, case
    if says is not None:
        assert says in message, message
