"""When an authorization was validated, for the CAA recheck on reuse (caa_recheck.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from acme_ca.authority.caa_recheck import validated_at
from acme_ca.domain.models import (
    Authorization,
    AuthorizationStatus,
    Challenge,
    ChallengeStatus,
    Identifier,
)

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def authorization(*challenges: Challenge) -> Authorization:
    return Authorization(
        id="a", account_id="acct", identifier=Identifier("dns", "web.bluerobin.local"),
        status=AuthorizationStatus.VALID, expires=CREATED + timedelta(days=1),
        created_at=CREATED, challenges=challenges,
    )


def test_validated_at_is_the_valid_challenges_time():
    """The valid challenge's time (CAA is checked right after it), not a failed one's."""
    valid = Challenge("c1", "a", "http-01", "t", ChallengeStatus.VALID,
                      validated_at=CREATED + timedelta(hours=2))
    pending = Challenge("c2", "a", "dns-01", "u", ChallengeStatus.PENDING)
    assert validated_at(authorization(pending, valid)) == CREATED + timedelta(hours=2)


def test_without_a_validated_time_the_creation_bounds_it():
    """No time recorded: created_at, earlier than any validation, so the recheck comes
    sooner, never later."""
    valid = Challenge("c1", "a", "http-01", "t", ChallengeStatus.VALID)
    assert validated_at(authorization(valid)) == CREATED
