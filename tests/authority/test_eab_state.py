"""An External Account Binding key's state (RFC 8555 7.3.4; authority/eab.state): what
`acme-ca eab list` shows and which refusal a newAccount with it gets are one decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acme_ca.authority import eab
from acme_ca.domain.problems import ProblemType

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEY = eab.new_key("team", NOW - timedelta(days=2), valid_for=timedelta(days=1))
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(("changes", "state", "detail"), [
    ({"expires": None}, eab.UNUSED, None),
    ({"expires": NOW + SECOND}, eab.UNUSED, None),
    ({"expires": NOW}, eab.EXPIRED, "expired at"),
    ({}, eab.EXPIRED, "expired at"),
    ({"account_id": "acct"}, eab.BOUND, "already bound"),  # an expired bound key: bound
    ({"revoked_at": NOW}, eab.REVOKED, "(team) was revoked"),
    ({"account_id": "acct", "revoked_at": NOW}, eab.REVOKED, "was revoked"),
])
def test_one_state_decides_the_listing_and_the_refusal(changes: dict[str, Any],
                                                       state: str, detail: str | None) -> None:
    key = replace(KEY, **changes)
    assert eab.state(key, NOW) == state
    problem = eab.unusable(key, NOW)
    if detail is None:
        assert problem is None
    else:
        assert problem is not None and problem.type == ProblemType.UNAUTHORIZED
        assert detail in problem.detail and key.kid in problem.detail
