"""Builders of ACME values for the store tests, whatever the backend.

The contract suite's backends are in ``contract/conftest.py``; SQLite's own fixtures in
``sqlite/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from acme_ca.domain.models import (
    Account,
    AccountStatus,
    Authorization,
    AuthorizationStatus,
    CertificateRecord,
    Challenge,
    ChallengeStatus,
    Identifier,
    Order,
    OrderStatus,
)
from acme_ca.store import Store

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
ACCOUNT = "acct-1"
OTHER = "acct-2"
DER = b"\x30\x82\x01\x0a" + bytes(range(64))
S = TypeVar("S", bound=Store)
PROBLEM = '{"type":"urn:ietf:params:acme:error:unauthorized","detail":"wrong token"}'


def make_account(account_id: str = ACCOUNT, **changes: object) -> Account:
    account = Account(
        id=account_id,
        status=AccountStatus.VALID,
        jwk='{"kty":"EC","crv":"P-256","x":"' + account_id + '","y":"y"}',
        thumbprint=f"thumb-{account_id}",
        contact=("mailto:admin@example.test",),
        terms_agreed=True,
        created_at=T0,
    )
    return replace(account, **changes)  # type: ignore[arg-type]


def make_authorization(
    authz_id: str,
    value: str = "www.example.test",
    *,
    account_id: str = ACCOUNT,
    types: Sequence[str] = ("http-01",),
    **changes: object,
) -> Authorization:
    challenges = tuple(
        Challenge(id=f"{authz_id}-{kind}", authorization_id=authz_id, type=kind,
                  token=f"token-{authz_id}-{kind}")
        for kind in types
    )
    authz = Authorization(
        id=authz_id,
        account_id=account_id,
        identifier=Identifier("dns", value),
        status=AuthorizationStatus.PENDING,
        expires=T0 + timedelta(days=7),
        created_at=T0,
        challenges=challenges,
    )
    return replace(authz, **changes)  # type: ignore[arg-type]


def make_order(
    order_id: str,
    authorizations: Sequence[Authorization],
    *,
    account_id: str = ACCOUNT,
    **changes: object,
) -> Order:
    order = Order(
        id=order_id,
        account_id=account_id,
        status=OrderStatus.PENDING,
        identifiers=tuple(authz.identifier for authz in authorizations),
        authorization_ids=tuple(authz.id for authz in authorizations),
        expires=T0 + timedelta(days=7),
        created_at=T0,
    )
    return replace(order, **changes)  # type: ignore[arg-type]


def make_record(serial: str = "1a2b3c", **changes: object) -> CertificateRecord:
    """A reserved certificate record for order-1 of ACCOUNT, with a DNS name and an IP."""
    record = CertificateRecord(
        serial=serial, issuer="ab" * 32, names=("www.example.test", "example.test", "192.0.2.1"),
        profile="server", not_before=T0, not_after=T0 + timedelta(days=90), created_at=T0,
        account_id=ACCOUNT, order_id="order-1")
    return replace(record, **changes)  # type: ignore[arg-type]


def reservation(serial: str, order_id: str) -> CertificateRecord:
    """The certificate record finalize reserves for `order_id` before signing."""
    return CertificateRecord(
        serial=serial, issuer="ab" * 32, names=("www.example.test",), profile="server",
        not_before=T0, not_after=T0 + timedelta(days=90), created_at=T0,
        account_id=ACCOUNT, order_id=order_id)


async def with_accounts(store: S) -> S:
    """Orders and authorizations reference accounts: create the two the tests use."""
    await store.create_account(make_account(ACCOUNT))
    await store.create_account(make_account(OTHER))
    return store


async def valid_authorization(store: Store, authz_id: str, value: str, *,
                              account_id: str = ACCOUNT, **changes: object) -> Authorization:
    """A VALID authorization, created (as always) with an order listing it."""
    authz = make_authorization(authz_id, value, account_id=account_id,
                               status=AuthorizationStatus.VALID, **changes)
    order = make_order(f"order-{authz_id}", [authz], account_id=account_id)
    await store.create_order(order, [authz])
    return authz


async def validating(store: Store, challenge_id: str, since: datetime | None = None
                     ) -> Challenge:
    """The challenge moved PENDING -> PROCESSING, as a challenge POST does; ``since``:
    when its validation started (``processing_since``), None leaves it unset."""
    if since is None:
        return await store.update_challenge(
            challenge_id, expected=ChallengeStatus.PENDING, status=ChallengeStatus.PROCESSING)
    return await store.update_challenge(
        challenge_id, expected=ChallengeStatus.PENDING, status=ChallengeStatus.PROCESSING,
        processing_since=since)


async def two_name_order(store: Store) -> None:
    """order-1 needs az-a and az-b; order-2 reuses az-a alone."""
    az_a = make_authorization("az-a", "a.example.test")
    az_b = make_authorization("az-b", "b.example.test")
    await store.create_order(make_order("order-1", [az_a, az_b]), [az_a, az_b])
    await store.create_order(make_order("order-2", [az_a]), [])
    for challenge_id in ("az-a-http-01", "az-b-http-01"):
        await validating(store, challenge_id)


async def assert_0009_kept_and_works(store: Store) -> None:
    """What migration 0009 must leave of a database with certificate '0a' issued and
    '0b' revoked by issuer 'ab'*32 and order 'order-old' valid: the rows as they were,
    and the revocation and "replaces" reads and writes working on them."""
    kept = await store.get_certificate("0a")
    assert kept is not None
    assert (kept.der, kept.renew_early_at, kept.replaced_by) == (DER, None, None)
    old_order = await store.get_order("order-old")
    assert old_order is not None
    assert (old_order.status.value, old_order.replaces) == ("valid", None)
    assert [e.serial for e in await store.revoked_certificates(
        "ab" * 32, expiring_after=T0)] == ["0b"]
    assert (await store.mark_renew_early("0a", T0)).renew_early_at == T0
    renewal = make_order("order-new", [], replaces="0a")
    assert (await store.create_order(renewal, [])).replaces == "0a"
