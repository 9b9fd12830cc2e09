"""The pure parts of ARI (RFC 9773): CertIDs (4.1) and suggested windows (4.2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acme_ca.authority.renewal_info import (
    cert_id,
    ordinary_window,
    parse_cert_id,
    serial_octets,
    suggested_window,
)
from acme_ca.domain.models import CertificateRecord, CertificateStatus
from acme_ca.domain.problems import AcmeProblem

ISSUED = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_rfc_example_cert_id_round_trips() -> None:
    """RFC 9773 4.1's example: AKI 69:88:5B:..:D4 and serial 0x87654321, whose DER
    content octets need a leading zero: aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE."""
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    parsed = parse_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
    assert (parsed.key_identifier, parsed.serial) == (aki, 0x87654321)
    assert cert_id(aki, 0x87654321) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert str(parsed) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


@pytest.mark.parametrize(("serial", "octets"), [
    (1, "01"), (0x7F, "7f"), (0x80, "0080"), (0xFF, "00ff"), (0x100, "0100"),
    (2**159 - 1, "7f" + "ff" * 19), (2**159, "0080" + "00" * 19),
])
def test_serial_octets_are_the_minimal_der_integer(serial: int, octets: str) -> None:
    """X.690 8.3: two's complement, no leading octet it does not need; RFC 5280
    4.1.2.2 allows 20 octets, so a 160-bit serial (21 with its zero) is refused."""
    assert serial_octets(serial).hex() == octets
    text = cert_id(b"\x01", serial)
    if len(octets) <= 40:
        assert parse_cert_id(text).serial == serial
    else:
        with pytest.raises(AcmeProblem):
            parse_cert_id(text)


def record(lifetime: timedelta, **fields: Any) -> CertificateRecord:
    issued = CertificateRecord(serial="1", issuer="f" * 64, names=("a.test",),
                               profile="server", not_before=ISSUED,
                               not_after=ISSUED + lifetime, created_at=ISSUED,
                               status=CertificateStatus.ISSUED, der=b"-")
    return replace(issued, **fields)


@pytest.mark.parametrize(("lifetime", "middle", "width"), [
    (timedelta(hours=1), timedelta(minutes=40), timedelta(minutes=4)),
    (timedelta(hours=24), timedelta(hours=16), timedelta(minutes=96)),
    (timedelta(days=90), timedelta(days=60), timedelta(days=6)),
])
def test_the_window_scales_with_the_lifetime(lifetime: timedelta, middle: timedelta,
                                             width: timedelta) -> None:
    """RFC 9773 4.2: centred at two thirds, a fifteenth of the lifetime wide: a 1-hour
    certificate renews around minute 40, a 24-hour one around hour 16."""
    window = ordinary_window(ISSUED, ISSUED + lifetime)
    assert window.start + (window.end - window.start) / 2 == ISSUED + middle
    assert window.end - window.start == width


def test_a_revoked_or_marked_certificate_has_its_window_end_then() -> None:
    """RFC 9773 4.2: revoked, or marked by the operator: the window ends at that
    moment, so it is in the past from then on; the earlier of the two counts."""
    marked_at, revoked_at = ISSUED + timedelta(hours=2), ISSUED + timedelta(hours=3)
    marked = suggested_window(record(timedelta(days=7), renew_early_at=marked_at))
    assert marked.end == marked_at and marked.start < marked.end
    both = suggested_window(record(timedelta(days=7), renew_early_at=revoked_at,
                                   status=CertificateStatus.REVOKED, revoked_at=marked_at))
    assert both.end == marked_at


def test_a_mark_after_the_ordinary_window_changes_nothing() -> None:
    lifetime = timedelta(hours=24)
    late = suggested_window(record(lifetime, renew_early_at=ISSUED + timedelta(hours=20)))
    assert late == ordinary_window(ISSUED, ISSUED + lifetime)


def test_a_window_is_whole_seconds_and_never_empty() -> None:
    """RFC 9773 4.2: end after start, on the wire as RFC 3339 without fractions."""
    window = ordinary_window(ISSUED + timedelta(microseconds=1),
                             ISSUED + timedelta(seconds=7))
    assert window.start.microsecond == window.end.microsecond == 0
    assert window.end > window.start
