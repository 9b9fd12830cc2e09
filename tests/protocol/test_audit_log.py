"""What the ACME front door appends to the audit log (issue 13, item 4): one entry per
account creation (and use of an EAB key), deactivation, key change, issuance and
revocation, with who (the account, or the certificate's key holder), the client's IP,
the identifiers and the serial; none for a refused request; a chain that verifies after
a burst of concurrent requests (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.domain.audit import AuditEntry, account_actor, key_actor, verify_chain
from acme_ca.domain.models import serial_hex
from acme_ca.encoding import jwk_thumbprint
from acme_ca.errors import StoreUnavailable
from tests.acme_client import AcmeTestClient, b64
from tests.authority.test_auditor import Kept, audit_lines
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    KEY_CHANGE,
    REVOKE,
    assert_problem,
    finalize,
    issue,
    key_change_jws,
    leaf_of,
    ready_order,
    registered,
)
from tests.protocol.test_eab import binding, make_key

__all__ = ["audit_lines"]  # the fixture

NAMES = ("web.bluerobin.local", "api.bluerobin.local")
CLIENT_IP = "127.0.0.1"  # the test client's address, as the server sees the peer


@pytest.fixture
def both(each_backend: AcmeServer) -> AcmeServer:
    """The server on SQLite and on PostgreSQL."""
    return each_backend


class Log:
    """The audit log as read so far: ``new()`` is what was appended since the last call."""

    def __init__(self, server: AcmeServer) -> None:
        self.server = server
        self.seen = 0

    async def new(self) -> list[AuditEntry]:
        entries = await self.server.store.audit_entries(after_seq=self.seen)
        if entries:
            self.seen = entries[-1].seq
        return entries


def account_id(client: AcmeTestClient) -> str:
    assert client.kid is not None
    return client.kid.rsplit("/", 1)[-1]


async def test_account_creation_is_recorded_once_by_the_new_account(both: AcmeServer) -> None:
    """Issue 13 item 4: an account creation, by the account itself, from the client's
    IP; finding an existing account (RFC 8555 7.3.1) records nothing."""
    log = Log(both)
    client = await registered(both)
    (entry,) = await log.new()
    assert (entry.action, entry.actor, entry.client_ip) == (
        "account.created", account_actor(account_id(client)), CLIENT_IP)
    assert entry.details["account"] == account_id(client)
    assert entry.details["thumbprint"] == client.thumbprint()
    assert entry.details["eab_kid"] is None and entry.serial is None
    again = await client.new_account()
    assert again.status == 200
    assert await log.new() == []


async def test_a_refused_new_account_records_nothing(server: AcmeServer) -> None:
    client = server.client()
    assert_problem(await client.new_account(onlyReturnExisting=True), 400,
                   "accountDoesNotExist")
    assert_problem(await client.new_account(contact=["tel:+1555"]), 400,
                   "unsupportedContact")
    assert await server.store.audit_entries() == []


async def test_an_eab_binding_records_the_account_and_the_key_use(server: AcmeServer) -> None:
    """RFC 8555 7.3.4: a newAccount with an External Account Binding is an account
    creation and a use of that key (its kid in the details); one whose MAC does not
    verify records nothing."""
    key = await make_key(server)
    log = Log(server)
    bad = server.client()
    refused = await bad.new_account(externalAccountBinding=binding(bad, key.kid, b"x" * 32))
    assert_problem(refused, 403, "unauthorized")
    assert await log.new() == []
    client = server.client()
    created = await client.new_account(
        externalAccountBinding=binding(client, key.kid, key.hmac_key))
    assert created.status == 201, created.body
    account = account_actor(account_id(client))
    made, used = await log.new()
    assert (made.action, made.actor, made.details["eab_kid"]) == (
        "account.created", account, key.kid)
    assert (used.action, used.actor, used.client_ip) == ("eab.key_used", account, CLIENT_IP)
    assert used.details == {"kid": key.kid, "account": account_id(client)}


async def test_deactivation_is_recorded_once(server: AcmeServer) -> None:
    """RFC 8555 7.3.6: deactivation by the client is recorded; a contact change, a
    read, and a request of the deactivated account are not."""
    client = await registered(server)
    log = Log(server)
    await log.new()
    assert client.kid is not None
    assert (await client.post(client.kid, {"contact": ["mailto:a@bluerobin.local"]})).status \
        == 200
    assert (await client.post(client.kid)).status == 200
    assert await log.new() == []
    assert (await client.post(client.kid, {"status": "deactivated"})).status == 200
    (entry,) = await log.new()
    assert (entry.action, entry.actor, entry.client_ip) == (
        "account.deactivated", account_actor(account_id(client)), CLIENT_IP)
    assert_problem(await client.post(client.kid, {"status": "deactivated"}), 401,
                   "unauthorized")
    assert await log.new() == []


async def test_key_change_is_recorded_with_both_thumbprints(server: AcmeServer) -> None:
    """RFC 8555 7.3.5: the old and the new key's thumbprints; a key already in use (409)
    records nothing."""
    client = await registered(server)
    other = await registered(server)
    log = Log(server)
    await log.new()
    in_use = await client.post(KEY_CHANGE, key_change_jws(client, other.key))
    assert in_use.status == 409
    assert await log.new() == []
    old = client.thumbprint()
    new_key = ec.generate_private_key(ec.SECP256R1())
    changed = await client.post(KEY_CHANGE, key_change_jws(client, new_key))
    assert changed.status == 200, changed.body
    client.key = new_key
    (entry,) = await log.new()
    assert (entry.action, entry.actor) == ("account.key_changed",
                                           account_actor(account_id(client)))
    assert entry.details == {"account": account_id(client), "old_thumbprint": old,
                             "new_thumbprint": client.thumbprint()}


async def test_issuance_is_recorded_once_with_serial_names_profile_key_and_order(
        both: AcmeServer) -> None:
    """Issue 13 item 4: an issuance, by the account, with the serial, identifiers,
    profile, key type and order; newOrder, challenges and a refused finalize record
    nothing."""
    client = await registered(both)
    log = Log(both)
    await log.new()
    order, order_url = await ready_order(both, client, *NAMES)
    refused, _ = await finalize(client, order, "other.bluerobin.local")
    assert refused.status == 400
    assert await log.new() == []
    response, _ = await finalize(client, order, *NAMES)
    assert response.status == 200, response.body
    leaf = leaf_of((await client.post(response.json()["certificate"])).body)
    (entry,) = await log.new()
    assert (entry.action, entry.actor, entry.client_ip) == (
        "certificate.issued", account_actor(account_id(client)), CLIENT_IP)
    assert entry.serial == serial_hex(leaf.serial_number)
    assert sorted(entry.identifiers) == sorted(NAMES)
    assert entry.details == {"profile": both.config.acme.default_profile,
                             "key_type": "ECDSA P-256", "account": account_id(client),
                             "order": order_url.rsplit("/", 1)[-1]}


async def issued(server: AcmeServer, client: AcmeTestClient) -> tuple[x509.Certificate, Any]:
    """A certificate for NAMES held by ``client``: (certificate, its key)."""
    order, _ = await ready_order(server, client, *NAMES)
    response, key = await finalize(client, order, *NAMES)
    assert response.status == 200, response.body
    return leaf_of((await client.post(response.json()["certificate"])).body), key


async def test_revocation_by_the_account_is_recorded_once(both: AcmeServer) -> None:
    """RFC 8555 7.6: revoked by the account that holds it, with the reason; revoking it
    again (alreadyRevoked) records nothing."""
    client = await registered(both)
    cert, _ = await issued(both, client)
    log = Log(both)
    await log.new()
    der = b64(cert.public_bytes(Encoding.DER))
    assert (await client.post(REVOKE, {"certificate": der, "reason": 1})).status == 200
    (entry,) = await log.new()
    assert (entry.action, entry.actor, entry.client_ip) == (
        "certificate.revoked", account_actor(account_id(client)), CLIENT_IP)
    assert entry.serial == serial_hex(cert.serial_number)
    assert sorted(entry.identifiers) == sorted(NAMES)
    assert entry.details == {"by": "owner", "account": account_id(client),
                             "reason": "keyCompromise"}
    assert_problem(await client.post(REVOKE, {"certificate": der}), 400, "alreadyRevoked")
    assert await log.new() == []


async def test_revocation_by_the_certificate_key_is_recorded_as_its_holder(
        server: AcmeServer) -> None:
    """RFC 8555 7.6: a request signed with the certificate's own key: the actor is that
    key's holder (its thumbprint), no account; a request signed by another key records
    nothing."""
    client = await registered(server)
    cert, key = await issued(server, client)
    log = Log(server)
    await log.new()
    der = b64(cert.public_bytes(Encoding.DER))
    stranger = server.client()
    assert_problem(await stranger.post(REVOKE, {"certificate": der}, use_jwk=True), 403,
                   "unauthorized")
    assert await log.new() == []
    holder = server.client(key=key)
    response = await holder.post(REVOKE, {"certificate": der, "reason": 4}, use_jwk=True)
    assert response.status == 200, response.body
    (entry,) = await log.new()
    assert entry.actor == key_actor(jwk_thumbprint(key.public_key()))
    assert entry.details == {"by": "certificate_key", "reason": "superseded"}
    assert entry.serial == serial_hex(cert.serial_number)


async def test_the_chain_verifies_after_a_burst_of_concurrent_requests(
        both: AcmeServer) -> None:
    """Issue 13 item 4: appends from concurrent requests are serialised: seq 1..n
    without gaps, each entry chained to the one before it."""
    clients = [both.client() for _ in range(12)]
    created = await asyncio.gather(*(c.new_account() for c in clients))
    assert [r.status for r in created] == [201] * len(clients)
    await asyncio.gather(*(issue(both, c, f"h{n}.bluerobin.local")
                           for n, c in enumerate(clients[:4])))
    entries = await both.store.audit_entries()
    assert [e.seq for e in entries] == list(range(1, len(clients) + 5))
    last, broken = verify_chain(entries)
    assert broken is None and last == entries[-1]
    assert sorted(e.action for e in entries) == sorted(
        ["account.created"] * len(clients) + ["certificate.issued"] * 4)


async def test_a_revocation_stands_and_is_answered_when_its_append_fails_oddly(
        server: AcmeServer, monkeypatch: pytest.MonkeyPatch, audit_lines: Kept) -> None:
    """Issue 13 item 4, review finding F4: the revocation is stored before its entry is
    appended; an append failing with anything (here a UnicodeEncodeError, not a
    StoreError) must not turn that stored change into a 500 for the client. The entry
    is logged whole at ERROR instead."""
    client = await registered(server)
    cert, _ = await issued(server, client)

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(server.store, "append_audit", refused)
    response = await client.post(REVOKE, {"certificate": b64(cert.public_bytes(Encoding.DER)),
                                          "reason": 1})
    monkeypatch.undo()
    assert response.status == 200, response.body
    serial = serial_hex(cert.serial_number)
    assert (await server.store.get_certificate(serial)).status.value == "revoked"
    (line,) = [r.getMessage() for r in audit_lines.records]
    assert "certificate.revoked" in line and serial in line


async def test_an_issuance_whose_commit_answer_is_lost_is_still_recorded(
        server: AcmeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13 item 4, review finding F2: ``finish_order`` committed (certificate stored,
    order valid) but its answer was lost; the issuance re-raises for a 503, and no one
    else would ever record the certificate (the sweeper sees only processing orders). It
    reads the certificate back and appends its certificate.issued entry."""
    client = await registered(server)
    order, _ = await ready_order(server, client, *NAMES)
    real = server.store.finish_order

    async def committed_then_lost(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise StoreUnavailable("the connection broke before the COMMIT's answer")

    monkeypatch.setattr(server.store, "finish_order", committed_then_lost)
    response, _ = await finalize(client, order, *NAMES)
    monkeypatch.undo()
    assert response.status == 503, response.body
    issued_entries = [e for e in await server.store.audit_entries()
                      if e.action == "certificate.issued"]
    assert len(issued_entries) == 1
    stored = await server.store.get_certificate(issued_entries[0].serial)
    assert stored.der is not None and set(issued_entries[0].identifiers) == set(NAMES)
