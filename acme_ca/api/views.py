"""JSON representations of ACME resources (RFC 8555 7.1.2 - 7.1.5).

Plain dicts with the RFC's member names: acme.sh greps the text, so nothing exotic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from acme_ca.api.links import Links
from acme_ca.config import AcmeConfig
from acme_ca.domain.models import Account, Authorization, Challenge, Identifier, Order, OrderStatus
from acme_ca.encoding import rfc3339


def identifier_json(identifier: Identifier) -> dict[str, str]:
    return {"type": identifier.type, "value": identifier.value}


def directory_json(links: Links, meta: AcmeConfig, caa_identities: tuple[str, ...] = (),
                   profiles: Mapping[str, str] | None = None) -> dict[str, Any]:
    meta_json: dict[str, Any] = {"externalAccountRequired": meta.eab_required}
    if meta.website:
        meta_json["website"] = meta.website
    if meta.terms_of_service:
        meta_json["termsOfService"] = meta.terms_of_service
    if caa_identities:
        meta_json["caaIdentities"] = list(caa_identities)
    if profiles:  # draft-ietf-acme-profiles 3: name -> description
        meta_json["profiles"] = dict(profiles)
    return {
        "newNonce": links.new_nonce(),
        "newAccount": links.new_account(),
        "newOrder": links.new_order(),
        "revokeCert": links.revoke_cert(),
        "keyChange": links.key_change(),
        "renewalInfo": links.renewal_info(),  # RFC 9773 3
        "meta": meta_json,
    }


def account_json(account: Account, links: Links) -> dict[str, Any]:
    return {
        "status": account.status.value,
        "contact": list(account.contact),
        "termsOfServiceAgreed": account.terms_agreed,
        "orders": links.account_orders(account.id),
        "createdAt": rfc3339(account.created_at),
    }


def order_json(order: Order, links: Links, replaces: str | None = None) -> dict[str, Any]:
    """``replaces``: the CertID of the certificate the order replaces (RFC 9773 5)."""
    doc: dict[str, Any] = {
        "status": order.status.value,
        "expires": rfc3339(order.expires),
        "identifiers": [identifier_json(i) for i in order.identifiers],
        "authorizations": [links.authorization(a) for a in order.authorization_ids],
        "finalize": links.finalize(order.id),
        "profile": order.profile,  # draft-ietf-acme-profiles 4
    }
    if order.not_before:
        doc["notBefore"] = rfc3339(order.not_before)
    if order.not_after:
        doc["notAfter"] = rfc3339(order.not_after)
    if replaces:
        doc["replaces"] = replaces
    if order.error:
        doc["error"] = json.loads(order.error)
    if order.status is OrderStatus.VALID and order.certificate_serial:
        doc["certificate"] = links.certificate(order.certificate_serial)
    return doc


def challenge_json(challenge: Challenge, links: Links) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": challenge.type,
        "url": links.challenge(challenge.id),
        "status": challenge.status.value,
        "token": challenge.token,
    }
    if challenge.validated_at:
        doc["validated"] = rfc3339(challenge.validated_at)
    if challenge.error:
        doc["error"] = json.loads(challenge.error)
    return doc


def authorization_json(authz: Authorization, links: Links) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "identifier": identifier_json(authz.identifier),
        "status": authz.status.value,
        "expires": rfc3339(authz.expires),
        "challenges": [challenge_json(c, links) for c in authz.challenges],
    }
    if authz.wildcard:
        doc["wildcard"] = True
    return doc
