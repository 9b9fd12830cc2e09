"""Rows <-> values for the PostgreSQL backend (private to it).

An order is read together with its authorization ids, and an authorization with
its challenges, in ONE statement: an ``ARRAY(SELECT ... ORDER BY position)``
subquery folds the child rows into an array, which asyncpg hands over typed (a
challenge as a tuple, its timestamps as datetimes). The same column lists follow
``RETURNING`` in compare-and-set updates, so an update returns the whole new value.

Statements built from these fragments are f-strings made once, at import, from
constants only (hence the ``noqa: S608`` on them); every value is a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from acme_ca.domain.models import (
    Account,
    AccountStatus,
    Authorization,
    AuthorizationStatus,
    CertificateRecord,
    CertificateStatus,
    Challenge,
    ChallengeStatus,
    Identifier,
    Order,
    OrderStatus,
)
from acme_ca.store.postgres.base import Record, aware, optional_aware

ORDER_COLUMNS = """orders.*, ARRAY(
    SELECT authorization_id FROM order_authorizations
    WHERE order_id = orders.id ORDER BY position
) AS authorization_ids"""

AUTHORIZATION_COLUMNS = """authorizations.*, ARRAY(
    SELECT (c.id, c.type, c.token, c.status, c.validated_at, c.error) FROM challenges AS c
    WHERE c.authorization_id = authorizations.id ORDER BY c.position
) AS challenges"""

# --- certificates ---------------------------------------------------------------------

CERTIFICATE_INSERT = """
INSERT INTO certificates (
    serial, issuer, names, profile, not_before, not_after, created_at, status, der,
    account_id, order_id, revoked_at, revocation_reason, renew_early_at, replaced_by
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"""


def certificate_row(record: CertificateRecord) -> tuple[object, ...]:
    return (
        record.serial,
        record.issuer,
        list(record.names),
        record.profile,
        aware(record.not_before),
        aware(record.not_after),
        aware(record.created_at),
        record.status.value,
        record.der,
        record.account_id,
        record.order_id,
        optional_aware(record.revoked_at),
        record.revocation_reason,
        optional_aware(record.renew_early_at),
        record.replaced_by,
    )


def to_certificate(row: Record) -> CertificateRecord:
    return CertificateRecord(
        serial=row["serial"],
        issuer=row["issuer"],
        names=tuple(row["names"]),
        profile=row["profile"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        created_at=row["created_at"],
        status=CertificateStatus(row["status"]),
        der=row["der"],
        account_id=row["account_id"],
        order_id=row["order_id"],
        revoked_at=row["revoked_at"],
        revocation_reason=row["revocation_reason"],
        renew_early_at=row["renew_early_at"],
        replaced_by=row["replaced_by"],
    )


# --- accounts -------------------------------------------------------------------------

ACCOUNT_INSERT = """
INSERT INTO accounts (id, status, jwk, thumbprint, contact, terms_agreed, created_at,
                      eab_kid)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""


def account_row(account: Account) -> tuple[object, ...]:
    return (
        account.id,
        account.status.value,
        account.jwk,
        account.thumbprint,
        list(account.contact),
        account.terms_agreed,
        aware(account.created_at),
        account.eab_kid,
    )


def to_account(row: Record) -> Account:
    return Account(
        id=row["id"],
        status=AccountStatus(row["status"]),
        jwk=row["jwk"],
        thumbprint=row["thumbprint"],
        contact=tuple(row["contact"]),
        terms_agreed=row["terms_agreed"],
        created_at=row["created_at"],
        eab_kid=row["eab_kid"],
    )


# --- orders ---------------------------------------------------------------------------

ORDER_INSERT = """
INSERT INTO orders (
    id, account_id, status, identifiers, expires, created_at, not_before, not_after,
    error, certificate_serial, profile, replaces
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"""
LINK_INSERT = """
INSERT INTO order_authorizations (order_id, authorization_id, position) VALUES ($1, $2, $3)"""


def order_row(order: Order) -> tuple[object, ...]:
    return (
        order.id,
        order.account_id,
        order.status.value,
        json.dumps([{"type": i.type, "value": i.value} for i in order.identifiers]),
        aware(order.expires),
        aware(order.created_at),
        optional_aware(order.not_before),
        optional_aware(order.not_after),
        order.error,
        order.certificate_serial,
        order.profile,
        order.replaces,
    )


def link_rows(order: Order) -> list[tuple[object, ...]]:
    return [(order.id, authz_id, position)
            for position, authz_id in enumerate(order.authorization_ids)]


def to_order(row: Record, authorization_ids: Sequence[str] | None = None) -> Order:
    """An order read with ``ORDER_COLUMNS``; its authorization ids from them unless given."""
    if authorization_ids is None:
        authorization_ids = row["authorization_ids"]
    return Order(
        id=row["id"],
        account_id=row["account_id"],
        status=OrderStatus(row["status"]),
        identifiers=tuple(
            Identifier(i["type"], i["value"]) for i in json.loads(row["identifiers"])
        ),
        authorization_ids=tuple(authorization_ids),
        expires=row["expires"],
        created_at=row["created_at"],
        not_before=row["not_before"],
        not_after=row["not_after"],
        error=row["error"],
        certificate_serial=row["certificate_serial"],
        profile=row["profile"],
        replaces=row["replaces"],
    )


# --- authorizations and challenges ----------------------------------------------------

AUTHORIZATION_INSERT = """
INSERT INTO authorizations (
    id, account_id, identifier_type, identifier_value, wildcard, status, expires, created_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""
CHALLENGE_INSERT = """
INSERT INTO challenges (
    id, authorization_id, position, type, token, status, validated_at, error
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""


def authorization_row(authz: Authorization) -> tuple[object, ...]:
    return (
        authz.id,
        authz.account_id,
        authz.identifier.type,
        authz.identifier.value,
        authz.wildcard,
        authz.status.value,
        aware(authz.expires),
        aware(authz.created_at),
    )


def challenge_rows(authorizations: Sequence[Authorization]) -> list[tuple[object, ...]]:
    """The challenges of ``authorizations``, each with its position in its own."""
    return [
        (c.id, c.authorization_id, position, c.type, c.token, c.status.value,
         optional_aware(c.validated_at), c.error)
        for authz in authorizations
        for position, c in enumerate(authz.challenges)
    ]


def to_authorization(row: Record) -> Authorization:
    """An authorization read with ``AUTHORIZATION_COLUMNS``, challenges included."""
    challenges = tuple(
        Challenge(
            id=challenge_id,
            authorization_id=row["id"],
            type=kind,
            token=token,
            status=ChallengeStatus(status),
            validated_at=validated_at,
            error=error,
        )
        for challenge_id, kind, token, status, validated_at, error in row["challenges"]
    )
    return Authorization(
        id=row["id"],
        account_id=row["account_id"],
        identifier=Identifier(row["identifier_type"], row["identifier_value"]),
        status=AuthorizationStatus(row["status"]),
        expires=row["expires"],
        created_at=row["created_at"],
        wildcard=row["wildcard"],
        challenges=challenges,
    )


def to_challenge(row: Record) -> Challenge:
    return Challenge(
        id=row["id"],
        authorization_id=row["authorization_id"],
        type=row["type"],
        token=row["token"],
        status=ChallengeStatus(row["status"]),
        validated_at=row["validated_at"],
        error=row["error"],
    )


def identifier_keys(identifiers: Sequence[Identifier]) -> tuple[list[str], list[str], list[bool]]:
    """Three parallel arrays (types, base names, wildcard flags), for ``unnest`` in a
    query: a wildcard name ``*.example.com`` is held by an authorization for
    ``example.com`` with the wildcard flag set; a plain name by one without it."""
    types, values, wildcards = [], [], []
    for identifier in identifiers:
        wildcard = identifier.value.startswith("*.")
        types.append(identifier.type)
        values.append(identifier.value[2:] if wildcard else identifier.value)
        wildcards.append(wildcard)
    return types, values, wildcards
