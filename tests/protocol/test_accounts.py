"""Accounts (RFC 8555 7.3): creation and lookup, contacts, terms of service, update,
deactivation, key rollover, and the orders list (7.1.2.1)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.acme_client import BASE, AcmeTestClient
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    KEY_CHANGE,
    NEW_ACCOUNT,
    REVOKE,
    assert_problem,
    key_change_jws,
    registered,
)

TOS = "https://bluerobin.local/tos"


async def test_new_account_201_then_same_key_200_same_location(server: AcmeServer) -> None:
    """RFC 8555 7.3 and 7.3.1: 201 + Location for a new key; the same key again finds the
    account: 200 with the same Location."""
    client = server.client()
    first = await client.new_account(contact=["mailto:ops@bluerobin.local"])
    assert first.status == 201 and first.headers["Location"].startswith(f"{BASE}/acme/acct/")
    assert first.json()["status"] == "valid"
    again = await client.new_account()
    assert again.status == 200 and again.headers["Location"] == first.headers["Location"]


async def test_only_return_existing(server: AcmeServer) -> None:
    """RFC 8555 7.3.1: onlyReturnExisting with an unknown key is accountDoesNotExist (400)
    and creates nothing; with a known key, 200 and the account's Location."""
    client = server.client()
    unknown = await client.post(NEW_ACCOUNT, {"onlyReturnExisting": True}, use_jwk=True)
    assert_problem(unknown, 400, "accountDoesNotExist")
    created = await client.new_account()
    assert created.status == 201
    known = await client.post(NEW_ACCOUNT, {"onlyReturnExisting": True}, use_jwk=True)
    assert known.status == 200 and known.headers["Location"] == created.headers["Location"]


@pytest.mark.parametrize(("contact", "kind"), [
    (["http://bluerobin.local/contact"], "unsupportedContact"),
    (["tel:+15555550100"], "unsupportedContact"),
    (["mailto:a@b.c?subject=x"], "invalidContact"),
    (["mailto:a@b.c,b@b.c"], "invalidContact"),
    (["mailto:not-an-address"], "invalidContact"),
    ("mailto:a@b.c", "malformed"),
    ([42], "malformed"),
])
async def test_contact_validation(server: AcmeServer, contact: Any, kind: str) -> None:
    """RFC 8555 7.3: contact is a list of URLs; this server supports mailto: only
    (unsupportedContact), one address without hfields each (invalidContact, 7.3)."""
    response = await server.client().new_account(contact=contact)
    assert_problem(response, 400, kind)


async def test_terms_of_service_must_be_agreed(server_factory: Any) -> None:
    """RFC 8555 7.1.1 and 7.3: with terms configured, the directory names them and an
    account that does not agree is refused (userActionRequired, 403, Link to the terms)."""
    server = await server_factory(**{"acme.terms_of_service": TOS})
    try:
        directory = await server.client().directory()
        assert directory["meta"]["termsOfService"] == TOS
        refused = await server.client().new_account(termsOfServiceAgreed=False)
        assert_problem(refused, 403, "userActionRequired")
        assert f'<{TOS}>;rel="terms-of-service"' in refused.headers.getall("Link")
        agreed = await server.client().new_account(termsOfServiceAgreed=True)
        assert agreed.status == 201 and agreed.json()["termsOfServiceAgreed"] is True
    finally:
        await server.store.close()


async def test_no_terms_of_service_in_directory_by_default(server: AcmeServer) -> None:
    """RFC 8555 7.1.1: termsOfService is advertised only when there are terms."""
    assert "termsOfService" not in (await server.client().directory())["meta"]


async def test_account_post_as_get_and_contact_update(server: AcmeServer) -> None:
    """RFC 8555 7.3.2 and 7.1.2: POST-as-GET returns the account with its "orders" URL;
    a POST with "contact" replaces the contacts."""
    client = await registered(server, contact=["mailto:old@bluerobin.local"])
    account = await client.post(client.kid)
    assert account.status == 200
    doc = account.json()
    assert doc["status"] == "valid" and doc["contact"] == ["mailto:old@bluerobin.local"]
    assert doc["orders"] == f"{client.kid}/orders"
    updated = await client.post(client.kid, {"contact": ["mailto:new@bluerobin.local"]})
    assert updated.status == 200 and updated.json()["contact"] == ["mailto:new@bluerobin.local"]
    assert (await client.post(client.kid)).json()["contact"] == ["mailto:new@bluerobin.local"]
    bad = await client.post(client.kid, {"contact": ["http://x"]})
    assert_problem(bad, 400, "unsupportedContact")


async def test_deactivated_account_is_refused_everywhere(server: AcmeServer) -> None:
    """RFC 8555 7.3.6: "If a server receives a POST or POST-as-GET from a deactivated
    account, it MUST return an error response with status code 401 (Unauthorized) and
    type unauthorized": with its kid anywhere, and newAccount (7.3.1, also with
    onlyReturnExisting) with its key does not revive it."""
    client = await registered(server)
    deactivated = await client.post(client.kid, {"status": "deactivated"})
    assert deactivated.status == 200 and deactivated.json()["status"] == "deactivated"
    assert_problem(await client.post(client.kid), 401, "unauthorized")
    assert_problem(await client.post(client.kid, {"status": "deactivated"}), 401, "unauthorized")
    assert_problem(await client.new_order("web.bluerobin.local"), 401, "unauthorized")
    assert_problem(await client.post(f"{client.kid}/orders"), 401, "unauthorized")
    assert_problem(await client.post(REVOKE, {"certificate": "AA"}), 401, "unauthorized")
    again = await client.post(NEW_ACCOUNT, {"termsOfServiceAgreed": True}, use_jwk=True)
    assert_problem(again, 401, "unauthorized")
    lookup = await client.post(NEW_ACCOUNT, {"onlyReturnExisting": True}, use_jwk=True)
    assert_problem(lookup, 401, "unauthorized")


async def test_account_status_other_than_deactivated_is_malformed(server: AcmeServer) -> None:
    """RFC 8555 7.3.6: "deactivated" is the only status a client may request."""
    client = await registered(server)
    assert_problem(await client.post(client.kid, {"status": "revoked"}), 400, "malformed")
    assert (await client.post(client.kid)).json()["status"] == "valid"


async def test_kid_of_one_account_on_another_accounts_url(server: AcmeServer) -> None:
    """RFC 8555 7.3.2: only the account itself may read or change its URL."""
    alice = await registered(server)
    bob = await registered(server)
    assert_problem(await alice.post(bob.kid), 403, "unauthorized")
    assert_problem(await alice.post(bob.kid, {"status": "deactivated"}), 403, "unauthorized")
    assert_problem(await alice.post(f"{bob.kid}/orders"), 403, "unauthorized")
    assert (await bob.post(bob.kid)).json()["status"] == "valid"


async def test_key_change_happy_path(server: AcmeServer) -> None:
    """RFC 8555 7.3.5: after a rollover the new key signs for the account and the old
    key is refused."""
    client = await registered(server)
    new_key = ec.generate_private_key(ec.SECP256R1())
    changed = await client.post(KEY_CHANGE, key_change_jws(client, new_key))
    assert changed.status == 200, changed.body
    assert changed.headers["Location"] == client.kid
    old = await client.post(client.kid)  # still signed by the old key
    assert_problem(old, 400, "malformed")
    lookup = await client.post(NEW_ACCOUNT, {"onlyReturnExisting": True}, use_jwk=True)
    assert_problem(lookup, 400, "accountDoesNotExist")
    client.key = new_key
    assert (await client.post(client.kid)).status == 200
    found = await client.post(NEW_ACCOUNT, {"onlyReturnExisting": True}, use_jwk=True)
    assert found.status == 200 and found.headers["Location"] == client.kid


async def test_key_change_to_a_key_in_use_is_409(server: AcmeServer) -> None:
    """RFC 8555 7.3.5: a new key that another account holds is 409 Conflict with the
    Location of that account."""
    alice = await registered(server)
    bob = await registered(server)
    response = await alice.post(KEY_CHANGE, key_change_jws(alice, bob.key))
    assert response.status == 409, response.body
    assert response.headers["Location"] == bob.kid
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert (await alice.post(alice.kid)).status == 200  # alice still has her key


@pytest.mark.parametrize("broken", ["url", "account", "oldKey"])
async def test_key_change_inner_jws_mismatch_is_malformed(server: AcmeServer,
                                                          broken: str) -> None:
    """RFC 8555 7.3.5: the inner JWS must have the outer url, the outer kid as "account"
    and the current key as "oldKey"; otherwise malformed, and the key is unchanged."""
    client = await registered(server)
    other = await registered(server)
    new_key = ec.generate_private_key(ec.SECP256R1())
    wrong = {"url": {"url": f"{BASE}/acme/new-order"}, "account": {"account": other.kid},
             "oldKey": {"old_key": ec.generate_private_key(ec.SECP256R1())}}[broken]
    response = await client.post(KEY_CHANGE, key_change_jws(client, new_key, **wrong))
    assert_problem(response, 400, "malformed")
    assert (await client.post(client.kid)).status == 200


async def test_orders_list(server: AcmeServer) -> None:
    """RFC 8555 7.1.2.1: the orders URL lists the account's orders (POST-as-GET)."""
    client = await registered(server)
    created = [await client.new_order(f"host{i}.bluerobin.local") for i in range(3)]
    listing = await client.post(f"{client.kid}/orders")
    assert listing.status == 200
    assert sorted(listing.json()["orders"]) == sorted(c.headers["Location"] for c in created)
    assert 'rel="next"' not in " ".join(listing.headers.getall("Link"))
    other = await registered(server)
    assert (await other.post(f"{other.kid}/orders")).json()["orders"] == []


async def test_orders_list_is_paginated(server: AcmeServer) -> None:
    """RFC 8555 7.1.2.1: a long list is split in pages linked by Link rel="next"."""
    client = await registered(server)
    clients = [AcmeTestClient(server.http, key=client.key, kid=client.kid) for _ in range(101)]
    created = await asyncio.gather(*(c.new_order(f"h{i}.bluerobin.local")
                                     for i, c in enumerate(clients)))
    assert all(c.status == 201 for c in created)
    first = await client.post(f"{client.kid}/orders")
    nexts = [link for link in first.headers.getall("Link") if link.endswith('rel="next"')]
    assert len(nexts) == 1, first.headers
    next_url = nexts[0].split(">", 1)[0].lstrip("<")
    second = await client.post(next_url)
    assert second.status == 200, second.body
    page1, page2 = first.json()["orders"], second.json()["orders"]
    assert len(page1) == 100 and len(page2) == 1
    assert sorted(page1 + page2) == sorted(c.headers["Location"] for c in created)
