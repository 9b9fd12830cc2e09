"""Authorizations and challenges (RFC 8555 7.5): reading, responding, deactivation,
expiry, ownership, and many orders of one account at once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from cryptography import x509

from acme_ca.authority import authorizations
from tests.acme_client import AcmeTestClient
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import assert_problem, finalize, issue, ready_order, registered
from tests.waiting import within

NAME = "web.bluerobin.local"


async def pending_authz(client: AcmeTestClient) -> tuple[str, dict, str]:
    """A new order for NAME: (authorization URL, authorization, order URL)."""
    created = await client.new_order(NAME)
    assert created.status == 201, created.body
    authz_url = created.json()["authorizations"][0]
    return authz_url, (await client.post(authz_url)).json(), created.headers["Location"]


def up_links(response: object) -> list[str]:
    return [link for link in response.headers.getall("Link", [])  # type: ignore[attr-defined]
            if link.endswith('rel="up"')]


async def test_pending_authorization_has_retry_after(server: AcmeServer) -> None:
    """RFC 8555 7.5 and 8.2 (ACME-NOTES): a pending authorization tells the client when
    to poll again with Retry-After."""
    client = await registered(server)
    authz_url, authz, _ = await pending_authz(client)
    response = await client.post(authz_url)
    assert response.status == 200 and authz["status"] == "pending"
    assert response.headers["Retry-After"] == "1"
    assert authz["identifier"] == {"type": "dns", "value": NAME}
    assert [c["type"] for c in authz["challenges"]] == ["http-01"]


async def test_challenge_response_processing_then_valid(
        server: AcmeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 8555 7.5.1: POST {} to the challenge starts validation; while it runs the
    answer is the challenge, "processing", with the posted "url", Link rel="up" to its
    authorization and Retry-After; once done, the same POST shows it valid."""
    monkeypatch.setattr(authorizations, "ANSWER_WITHIN", 0.01)  # not to wait long for it
    server.validator.hold = asyncio.Event()  # the validation runs until released
    client = await registered(server)
    authz_url, authz, _ = await pending_authz(client)
    challenge = authz["challenges"][0]
    server.validator.served[challenge["token"]] = client.key_authorization(challenge["token"])
    started = await within(client.post(challenge["url"], {}), "the answer, before the end")
    assert started.status == 200, started.body
    doc = started.json()
    assert doc["status"] == "processing" and doc["url"] == challenge["url"]
    assert up_links(started) == [f'<{authz_url}>;rel="up"']
    assert started.headers["Retry-After"] == "1"
    server.validator.hold.set()
    await server.settle()
    again = await client.post(challenge["url"], {})
    assert again.status == 200 and again.json()["status"] == "valid"
    assert again.json()["url"] == challenge["url"] and "validated" in again.json()
    assert up_links(again) == [f'<{authz_url}>;rel="up"']
    assert (await client.post(authz_url)).json()["status"] == "valid"
    assert server.validator.calls == [NAME]


async def test_a_challenge_is_processing_since_the_post_that_started_it(
        server: AcmeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store knows when a validation started (Store.processing_challenges), so that
    only those whose process stopped are resumed, not one running now elsewhere."""
    monkeypatch.setattr(authorizations, "ANSWER_WITHIN", 0.01)
    server.validator.hold = asyncio.Event()
    client = await registered(server)
    _, authz, _ = await pending_authz(client)
    challenge = authz["challenges"][0]
    posted_at = server.clock.now()
    assert (await client.post(challenge["url"], {})).json()["status"] == "processing"
    server.clock.advance(timedelta(seconds=5))

    async def started_by(moment: datetime) -> list[str]:
        found = await server.store.processing_challenges(moment, limit=10)
        return [c.token for c in found]

    assert await started_by(posted_at - timedelta(microseconds=1)) == []
    assert await started_by(posted_at) == [challenge["token"]]
    server.validator.hold.set()
    await server.settle()


async def test_a_quick_validation_is_answered_in_the_challenge_response(
        server: AcmeServer) -> None:
    """RFC 8555 7.5.1 allows the server to validate before answering: a validation that
    ends within ANSWER_WITHIN comes back final ("valid"), so the client need not poll."""
    client = await registered(server)
    authz_url, authz, _ = await pending_authz(client)
    challenge = authz["challenges"][0]
    server.validator.served[challenge["token"]] = client.key_authorization(challenge["token"])
    response = await client.post(challenge["url"], {})
    assert response.status == 200 and response.json()["status"] == "valid"
    assert "Retry-After" not in response.headers
    assert up_links(response) == [f'<{authz_url}>;rel="up"']
    assert (await client.post(authz_url)).json()["status"] == "valid"


async def test_challenge_post_as_get_does_not_start_validation(server: AcmeServer) -> None:
    """RFC 8555 7.5.1: only a POST of {} starts validation; POST-as-GET reads."""
    client = await registered(server)
    authz_url, authz, _ = await pending_authz(client)
    challenge = authz["challenges"][0]
    read = await client.post(challenge["url"])
    assert read.status == 200 and read.json()["status"] == "pending"
    assert up_links(read) == [f'<{authz_url}>;rel="up"']
    await server.settle()
    assert server.validator.calls == []
    assert (await client.post(authz_url)).json()["status"] == "pending"


async def test_deactivate_pending_authorization(server: AcmeServer) -> None:
    """RFC 8555 7.5.2 and 7.1.6: a pending authorization can be deactivated; its order
    becomes invalid."""
    client = await registered(server)
    authz_url, _, order_url = await pending_authz(client)
    response = await client.post(authz_url, {"status": "deactivated"})
    assert response.status == 200 and response.json()["status"] == "deactivated"
    assert (await client.post(authz_url)).json()["status"] == "deactivated"
    order = (await client.post(order_url)).json()
    assert order["status"] == "invalid"


async def test_deactivate_valid_authorization(server: AcmeServer) -> None:
    """RFC 8555 7.5.2: a valid authorization can be deactivated; the server must not
    treat it as sufficient for issuance, so its (ready) order becomes invalid and
    finalize is refused."""
    client = await registered(server)
    order, order_url = await ready_order(server, client, NAME)
    authz_url = order["authorizations"][0]
    response = await client.post(authz_url, {"status": "deactivated"})
    assert response.status == 200 and response.json()["status"] == "deactivated"
    refused, _ = await finalize(client, order, NAME)
    assert_problem(refused, 403, "orderNotReady")
    assert await server.store.list_certificates() == []
    assert (await client.post(order_url)).json()["status"] == "invalid"


async def test_deactivated_valid_authorization_is_not_reused(server: AcmeServer) -> None:
    """RFC 8555 7.5.2: a deactivated authorization is not reused for a new order."""
    client = await registered(server)
    order, _ = await ready_order(server, client, NAME)
    await client.post(order["authorizations"][0], {"status": "deactivated"})
    again = await client.new_order(NAME)
    assert again.status == 201 and again.json()["status"] == "pending"
    assert again.json()["authorizations"] != order["authorizations"]


@pytest.mark.parametrize("payload", [{"status": "valid"}, {"status": "revoked"}, {}])
async def test_deactivation_with_other_status_is_malformed(server: AcmeServer,
                                                           payload: dict) -> None:
    """RFC 8555 7.5.2: "deactivated" is the only status a client may set."""
    client = await registered(server)
    authz_url, _, _ = await pending_authz(client)
    assert_problem(await client.post(authz_url, payload), 400, "malformed")
    assert (await client.post(authz_url)).json()["status"] == "pending"


async def test_another_accounts_authorization_is_unauthorized(server: AcmeServer) -> None:
    """RFC 8555 7.5: authorizations and challenges belong to their account."""
    alice = await registered(server)
    mallory = await registered(server)
    authz_url, authz, _ = await pending_authz(alice)
    challenge_url = authz["challenges"][0]["url"]
    assert_problem(await mallory.post(authz_url), 403, "unauthorized")
    assert_problem(await mallory.post(authz_url, {"status": "deactivated"}), 403,
                   "unauthorized")
    assert_problem(await mallory.post(challenge_url), 403, "unauthorized")
    assert_problem(await mallory.post(challenge_url, {}), 403, "unauthorized")
    await server.settle()
    assert server.validator.calls == []
    assert (await alice.post(authz_url)).json()["status"] == "pending"


async def test_pending_authorization_expires(server: AcmeServer) -> None:
    """RFC 8555 7.1.4 and 7.1.6: past its "expires" a pending authorization is expired."""
    client = await registered(server)
    authz_url, authz, _ = await pending_authz(client)
    assert authz["expires"]
    server.clock.advance(timedelta(days=8))
    client.nonce = None  # the cached nonce expired with the clock (RFC 8555 6.5)
    response = await client.post(authz_url)
    assert response.status == 200 and response.json()["status"] == "expired"


async def test_valid_authorization_expires(server: AcmeServer) -> None:
    """RFC 8555 7.1.4 and 7.1.6: a valid authorization becomes expired after "expires",
    and is then not reused."""
    client = await registered(server)
    order, _ = await ready_order(server, client, NAME)
    authz_url = order["authorizations"][0]
    server.clock.advance(timedelta(days=2))
    client.nonce = None
    assert (await client.post(authz_url)).json()["status"] == "expired"
    again = await client.new_order(NAME)
    assert again.json()["status"] == "pending"
    assert again.json()["authorizations"] != [authz_url]


async def test_ready_order_with_expired_authorization_is_not_finalized(
        server: AcmeServer) -> None:
    """RFC 8555 7.1.4 and 7.1.6: an expired authorization does not authorize issuance;
    a ready order whose authorization expired becomes invalid rather than issuing."""
    client = await registered(server)
    order, order_url = await ready_order(server, client, NAME)
    server.clock.advance(timedelta(days=2))
    client.nonce = None
    response, _ = await finalize(client, order, NAME)
    assert_problem(response, 403, "orderNotReady")
    assert (await client.post(order_url)).json()["status"] == "invalid"


async def test_eight_concurrent_orders_on_one_account(server: AcmeServer) -> None:
    """RFC 8555 7.4: one account's concurrent orders are independent; every one ends
    with its certificate (step-ca#341 fails 13-21% of them)."""
    client = await registered(server)
    clients = [AcmeTestClient(server.http, key=client.key, kid=client.kid) for _ in range(8)]
    names = [f"host{i}.bluerobin.local" for i in range(8)]
    results = await asyncio.gather(*(issue(server, c, n) for c, n in zip(clients, names,
                                                                          strict=True)))
    for name, (order, pem) in zip(names, results, strict=True):
        assert order["status"] == "valid"
        leaf = x509.load_pem_x509_certificates(pem)[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [name]
    assert len(await server.store.list_certificates()) == 8
    listing = await client.post(f"{client.kid}/orders")
    assert len(listing.json()["orders"]) == 8
