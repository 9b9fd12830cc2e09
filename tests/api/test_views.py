"""The JSON representations' timestamps (acme_ca/api/views.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acme_ca.api.views import rfc3339


@pytest.mark.parametrize(("moment", "text"), [
    (datetime(2026, 12, 7, 3, 4, 5, 999999, tzinfo=UTC), "2026-12-07T03:04:05Z"),
    (datetime(999, 1, 2, 0, 0, 0, tzinfo=UTC), "0999-01-02T00:00:00Z"),
    (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "9999-12-31T23:59:59Z"),
])
def test_rfc3339_is_a_date_time_to_the_second_in_utc(moment: datetime, text: str) -> None:
    """RFC 8555 7.1 (expires, validated ...) takes RFC 3339 5.6's date-time: four digits
    of year (date-fullyear, zero-padded), two of everything else, "Z" for UTC; the
    fraction of a second is left out, never rounded up."""
    assert rfc3339(moment) == text
