"""Rows <-> values for the ACME tables of the SQLite backend (private to it).

An order is read together with its authorization ids, and an authorization with
its challenges, in ONE statement: a correlated subquery folds the child rows into
a JSON array (``ORDER_COLUMNS``, ``AUTHORIZATION_COLUMNS``). The same column lists
follow ``RETURNING`` in compare-and-set updates, so an update returns the whole
new value without a second query. Each array element carries its sort key
(position, rowid), because SQLite does not promise the order in which
``json_group_array`` sees its rows; Python sorts them.
"""

from __future__ import annotations

import json
import sqlite3
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
from acme_ca.store.sqlite.base import from_text, optional_text, optional_time, to_text

# Statements that include these two fragments are f-strings built once, at import,
# from constants only (hence the noqa: S608 on them); every value is a parameter.

# The order's authorization ids as [[position, id], ...].
ORDER_COLUMNS = """*, (
    SELECT json_group_array(json_array(position, authorization_id))
    FROM order_authorizations WHERE order_id = orders.id
) AS authorization_ids"""

# The authorization's challenges as [[rowid, id, type, token, status, validated_at,
# error], ...]; rowid is the insertion order, which is the order they were given in.
AUTHORIZATION_COLUMNS = """*, (
    SELECT json_group_array(json_array(
        c.rowid, c.id, c.type, c.token, c.status, c.validated_at, c.error))
    FROM challenges AS c WHERE c.authorization_id = authorizations.id
) AS challenges"""


# --- certificates ----------------------------------------------------------------------


def certificate_row(record: CertificateRecord) -> tuple[object, ...]:
    return (
        record.serial,
        record.issuer,
        json.dumps(list(record.names)),
        record.profile,
        to_text(record.not_before),
        to_text(record.not_after),
        to_text(record.created_at),
        record.status.value,
        record.der,
        record.account_id,
        record.order_id,
        optional_text(record.revoked_at),
        record.revocation_reason,
        optional_text(record.renew_early_at),
        record.replaced_by,
    )


def to_certificate(row: sqlite3.Row) -> CertificateRecord:
    return CertificateRecord(
        serial=row["serial"],
        issuer=row["issuer"],
        names=tuple(json.loads(row["names"])),
        profile=row["profile"],
        not_before=from_text(row["not_before"]),
        not_after=from_text(row["not_after"]),
        created_at=from_text(row["created_at"]),
        status=CertificateStatus(row["status"]),
        der=row["der"],
        account_id=row["account_id"],
        order_id=row["order_id"],
        revoked_at=optional_time(row["revoked_at"]),
        revocation_reason=row["revocation_reason"],
        renew_early_at=optional_time(row["renew_early_at"]),
        replaced_by=row["replaced_by"],
    )


# --- accounts -------------------------------------------------------------------------


def account_row(account: Account) -> tuple[object, ...]:
    return (
        account.id,
        account.status.value,
        account.jwk,
        account.thumbprint,
        json.dumps(list(account.contact)),
        int(account.terms_agreed),
        to_text(account.created_at),
        account.eab_kid,
    )


def to_account(row: sqlite3.Row) -> Account:
    return Account(
        id=row["id"],
        status=AccountStatus(row["status"]),
        jwk=row["jwk"],
        thumbprint=row["thumbprint"],
        contact=tuple(json.loads(row["contact"])),
        terms_agreed=bool(row["terms_agreed"]),
        created_at=from_text(row["created_at"]),
        eab_kid=row["eab_kid"],
    )


def contact_json(contact: Sequence[str] | None) -> str | None:
    return None if contact is None else json.dumps(list(contact))


# --- orders ---------------------------------------------------------------------------


def order_row(order: Order) -> tuple[object, ...]:
    return (
        order.id,
        order.account_id,
        order.status.value,
        json.dumps([{"type": i.type, "value": i.value} for i in order.identifiers]),
        to_text(order.expires),
        to_text(order.created_at),
        optional_text(order.not_before),
        optional_text(order.not_after),
        order.error,
        order.certificate_serial,
        order.profile,
        order.replaces,
    )


def to_order(row: sqlite3.Row, authorization_ids: Sequence[str] | None = None) -> Order:
    """The order in ``row``; its authorization ids from ``ORDER_COLUMNS`` unless given."""
    if authorization_ids is None:
        listed = sorted(json.loads(row["authorization_ids"]))
        authorization_ids = [authz_id for _, authz_id in listed]
    return Order(
        id=row["id"],
        account_id=row["account_id"],
        status=OrderStatus(row["status"]),
        identifiers=tuple(
            Identifier(i["type"], i["value"]) for i in json.loads(row["identifiers"])
        ),
        authorization_ids=tuple(authorization_ids),
        expires=from_text(row["expires"]),
        created_at=from_text(row["created_at"]),
        not_before=optional_time(row["not_before"]),
        not_after=optional_time(row["not_after"]),
        error=row["error"],
        certificate_serial=row["certificate_serial"],
        profile=row["profile"],
        replaces=row["replaces"],
    )


# --- authorizations and challenges ----------------------------------------------------


def authorization_row(authz: Authorization) -> tuple[object, ...]:
    return (
        authz.id,
        authz.account_id,
        authz.identifier.type,
        authz.identifier.value,
        int(authz.wildcard),
        authz.status.value,
        to_text(authz.expires),
        to_text(authz.created_at),
    )


def challenge_row(challenge: Challenge) -> tuple[object, ...]:
    return (
        challenge.id,
        challenge.authorization_id,
        challenge.type,
        challenge.token,
        challenge.status.value,
        optional_text(challenge.validated_at),
        challenge.error,
    )


def to_authorization(row: sqlite3.Row) -> Authorization:
    """An authorization read with ``AUTHORIZATION_COLUMNS``, challenges included."""
    listed = sorted(json.loads(row["challenges"]))
    challenges = tuple(
        Challenge(
            id=challenge_id,
            authorization_id=row["id"],
            type=kind,
            token=token,
            status=ChallengeStatus(status),
            validated_at=optional_time(validated_at),
            error=error,
        )
        for _, challenge_id, kind, token, status, validated_at, error in listed
    )
    return Authorization(
        id=row["id"],
        account_id=row["account_id"],
        identifier=Identifier(row["identifier_type"], row["identifier_value"]),
        status=AuthorizationStatus(row["status"]),
        expires=from_text(row["expires"]),
        created_at=from_text(row["created_at"]),
        wildcard=bool(row["wildcard"]),
        challenges=challenges,
    )


def to_challenge(row: sqlite3.Row) -> Challenge:
    return Challenge(
        id=row["id"],
        authorization_id=row["authorization_id"],
        type=row["type"],
        token=row["token"],
        status=ChallengeStatus(row["status"]),
        validated_at=optional_time(row["validated_at"]),
        error=row["error"],
    )


def identifier_keys(identifiers: Sequence[Identifier]) -> str:
    """``[[type, base name, wildcard], ...]`` as JSON, for ``json_each`` in a query.

    A wildcard name ``*.example.com`` is held by an authorization for
    ``example.com`` with the wildcard flag set; a plain name by one without it.
    """
    keys = [
        [i.type, i.value[2:], 1] if i.value.startswith("*.") else [i.type, i.value, 0]
        for i in identifiers
    ]
    return json.dumps(keys)
