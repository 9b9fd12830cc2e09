"""The certificate window finalize computes (RFC 8555 7.1.3): always signable, never
longer than [policy] max_validity. The protocol-level cases are in
tests/protocol/test_finalize_checks.py; these are the ones a client cannot reach."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from acme_ca.authority.finalize_checks import order_window
from acme_ca.config import PolicyConfig
from acme_ca.config_policy import default_profiles
from acme_ca.domain.models import Identifier, Order, OrderStatus
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.pki.issuer import Issuer

POLICY = PolicyConfig()  # 7-day default, 90-day maximum, 1-minute backdate


def order(now: datetime, not_before: datetime | None = None,
          not_after: datetime | None = None) -> Order:
    return Order(id="o", account_id="a", status=OrderStatus.READY,
                 identifiers=(Identifier("dns", "web.bluerobin.local"),),
                 authorization_ids=("z",), expires=now + timedelta(days=7), created_at=now,
                 not_before=not_before, not_after=not_after)


def window(requested: Order, policy: PolicyConfig, issuer: Issuer,
           now: datetime) -> tuple[datetime, datetime]:
    """``order_window`` under the server profile as load_config makes it from `policy`."""
    server = default_profiles(policy.default_validity, policy.max_validity)["server"]
    return order_window(requested, policy, issuer, now, server)


def test_default_window_is_backdated_inside_the_validity(issuer: Issuer, now: datetime) -> None:
    """As Boulder: the backdate counts inside the default validity."""
    assert window(order(now), POLICY, issuer, now) == (
        now - POLICY.backdate, now - POLICY.backdate + POLICY.default_validity)


def test_requested_end_close_by_keeps_the_full_backdate(issuer: Issuer, now: datetime) -> None:
    """RFC 8555 7.1.3: the client's notAfter is kept; the backdate is whole when the
    window has room for it."""
    end = now + timedelta(days=30)
    assert window(order(now, not_after=end), POLICY, issuer, now) == (
        now - POLICY.backdate, end)


def test_lowered_max_validity_refuses_an_older_order(issuer: Issuer, now: datetime) -> None:
    """An order accepted under a 90-day maximum, finalized after the operator lowered it
    to 30 days: malformed, never a certificate longer than policy."""
    lowered = PolicyConfig(default_validity=timedelta(days=7), max_validity=timedelta(days=30))
    requested = order(now, not_before=now, not_after=now + timedelta(days=60))
    with pytest.raises(AcmeProblem) as refused:
        window(requested, lowered, issuer, now)
    assert refused.value.type is ProblemType.MALFORMED


def test_window_past_the_issuer_is_refused(issuer: Issuer, now: datetime) -> None:
    """RFC 5280 4.1.2.5: a leaf cannot end before it begins; cut at the intermediate's
    end, a window that starts after it is malformed instead of a signing error."""
    start = issuer.certificate.not_valid_after_utc + timedelta(hours=1)
    requested = order(now, not_before=start, not_after=start + timedelta(days=1))
    with pytest.raises(AcmeProblem) as refused:
        window(requested, POLICY, issuer, now)
    assert refused.value.type is ProblemType.MALFORMED
    assert "issuing CA's certificate ends" in refused.value.detail, refused.value.detail


def test_client_not_before_gets_no_backdate_on_top(issuer: Issuer, now: datetime) -> None:
    """RFC 8555 7.1.3: a notBefore the client asked for (here 59 s ago, inside the
    backdate newOrder allows) is the certificate's notBefore, not moved back again."""
    start = now - timedelta(seconds=59)
    assert window(order(now, not_before=start), POLICY, issuer, now) == (
        start, start + POLICY.default_validity)


@pytest.mark.parametrize("not_after", [None, timedelta(days=90)], ids=["default", "notAfter"])
def test_a_past_not_before_starts_no_earlier_than_the_backdate(
        issuer: Issuer, now: datetime, not_after: timedelta | None) -> None:
    """RFC 8555 7.1.3: an order asked for notBefore = its creation and was finalized
    7 days later. The certificate starts at now - backdate, never days before it was
    signed (and before the identifier was validated); a default window then lasts the
    default validity from there, a requested notAfter stays."""
    created = now - timedelta(days=7)
    end = None if not_after is None else created + not_after
    got = window(order(now, not_before=created, not_after=end), POLICY, issuer, now)
    assert got == (now - POLICY.backdate,
                   end or now - POLICY.backdate + POLICY.default_validity)


def test_a_window_whose_not_after_passed_says_so(issuer: Issuer, now: datetime) -> None:
    """RFC 8555 7.1.3: a requested notAfter already past cannot be honoured; the problem
    names the notAfter, not the issuing CA, which has years left."""
    requested = order(now, not_before=now - timedelta(days=2),
                      not_after=now - timedelta(days=1))
    with pytest.raises(AcmeProblem) as refused:
        window(requested, POLICY, issuer, now)
    assert refused.value.type is ProblemType.MALFORMED
    assert "notAfter" in refused.value.detail, refused.value.detail
    assert "issuing CA" not in refused.value.detail, refused.value.detail
