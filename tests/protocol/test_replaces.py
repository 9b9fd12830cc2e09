"""newOrder's "replaces" (RFC 9773 5): which certificate an order replaces, checked
(the account's own, an identifier in common, not replaced yet), echoed, marked
replaced once the order is valid, and what it changes in the rate limits (RFC 8555
6.6)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.domain.models import serial_hex
from tests.acme_client import AcmeTestClient, Response, b64
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    REVOKE,
    assert_problem,
    cert_id,
    finalize,
    issue,
    leaf_of,
    ready_order,
    registered,
)
from tests.protocol.test_rate_limits import advance, rate_limited

NAME = "web.bluerobin.local"
OTHER = "api.bluerobin.local"


async def issued(server: AcmeServer, client: AcmeTestClient, *names: str
                 ) -> x509.Certificate:
    _, pem = await issue(server, client, *(names or (NAME,)))
    return leaf_of(pem)


async def test_replaces_is_accepted_echoed_then_already_replaced(server: AcmeServer) -> None:
    """RFC 9773 5: the order reflects "replaces" in the response and when read again;
    a second order replacing the same certificate while the first is not invalid is
    409 alreadyReplaced."""
    client = await registered(server)
    old = await issued(server, client)
    created = await client.new_order(NAME, replaces=cert_id(old))
    assert created.status == 201, created.body
    assert created.json()["replaces"] == cert_id(old)
    again = await client.post(created.headers["Location"])
    assert again.json()["replaces"] == cert_id(old)
    refused = await client.new_order(NAME, OTHER, replaces=cert_id(old))
    assert_problem(refused, 409, "alreadyReplaced")
    assert "replaces" not in (await client.new_order(NAME)).json()


async def test_of_two_racing_replacements_one_is_created(server: AcmeServer) -> None:
    """RFC 9773 5: two newOrders replacing one certificate at once (each passing the
    checks before either is written): the store creates one, the other is 409
    alreadyReplaced."""
    client = await registered(server)
    old = await issued(server, client)
    twin = AcmeTestClient(server.http, key=client.key, kid=client.kid)
    answers = await asyncio.gather(client.new_order(NAME, replaces=cert_id(old)),
                                   twin.new_order(NAME, replaces=cert_id(old)))
    assert sorted(a.status for a in answers) == [201, 409], [a.body for a in answers]
    assert_problem(next(a for a in answers if a.status == 409), 409, "alreadyReplaced")


async def test_the_old_certificate_is_replaced_once_the_order_is_valid(
        server: AcmeServer) -> None:
    """RFC 9773 5: the certificate counts as replaced when the replacing order is
    valid (its record names the order); it cannot be replaced again."""
    client = await registered(server)
    old = await issued(server, client)
    serial = serial_hex(old.serial_number)
    order, url = await ready_order(server, client, created=await client.new_order(
        NAME, replaces=cert_id(old)))
    assert (await server.store.get_certificate(serial)).replaced_by is None
    finalized, _ = await finalize(client, order, NAME)
    assert finalized.status == 200, finalized.body
    assert finalized.json()["replaces"] == cert_id(old)
    assert (await server.store.get_certificate(serial)).replaced_by == url.rsplit("/", 1)[1]
    assert_problem(await client.new_order(NAME, replaces=cert_id(old)), 409,
                   "alreadyReplaced")


async def test_an_invalid_replacing_order_frees_the_certificate(server: AcmeServer) -> None:
    """RFC 9773 5: only an order that is not invalid holds the certificate; once the
    replacing order failed (its challenge answered wrong), another may replace it."""
    client = await registered(server)
    old = await issued(server, client, OTHER)  # its authorization is valid: not reused below
    failing = await client.new_order(OTHER, "new.bluerobin.local", replaces=cert_id(old))
    assert failing.status == 201, failing.body
    authz_urls = failing.json()["authorizations"]
    for authz_url in authz_urls:
        authz = (await client.post(authz_url)).json()
        if authz["status"] == "pending":  # nothing served: the validation fails
            challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
            assert (await client.post(challenge["url"], {})).status == 200
    await server.settle()
    assert (await client.post(failing.headers["Location"])).json()["status"] == "invalid"
    retried = await client.new_order(OTHER, replaces=cert_id(old))
    assert retried.status == 201, retried.body


async def test_another_accounts_certificate_cannot_be_replaced(server: AcmeServer) -> None:
    """RFC 9773 5: the certificate and the order must belong to one account
    (unauthorized, as Pebble and Boulder answer)."""
    owner = await registered(server)
    old = await issued(server, owner)
    stranger = await registered(server)
    assert_problem(await stranger.new_order(NAME, replaces=cert_id(old)), 403, "unauthorized")


async def test_an_order_sharing_no_identifier_cannot_replace(server: AcmeServer) -> None:
    """RFC 9773 5: the order and the certificate it replaces share an identifier."""
    client = await registered(server)
    old = await issued(server, client)
    assert_problem(await client.new_order(OTHER, replaces=cert_id(old)), 400, "malformed")


async def test_replaces_must_name_a_certificate_of_this_ca(server: AcmeServer) -> None:
    """RFC 9773 5 (a CertID as in 4.1): not a string, not a CertID, or a CertID of no
    certificate this CA issued is malformed, and no order is created."""
    client = await registered(server)
    old = await issued(server, client)
    aki = cert_id(old).split(".")[0]
    for value in (42, "", "not-a-cert-id", cert_id(old) + "=", f"{aki}.AQIDBAUGBwg"):
        refused = await client.new_order(NAME, replaces=value)
        assert_problem(refused, 400, "malformed")


async def test_a_due_replacement_is_exempt_from_certificates_per_names(
        server_factory) -> None:
    """RFC 9773 5 and RFC 8555 6.6: an order replacing a certificate whose window has
    begun (Boulder's rule) is not counted against certificates_per_names; before the
    window, or without "replaces", the limit holds."""
    server = await server_factory(**{"limits.certificates_per_names": "1/7d",
                                     "policy.default_validity": "24h"})
    client = await registered(server)
    old = await issued(server, client)
    rate_limited(await client.new_order(NAME, replaces=cert_id(old)),
                 "certificates_per_names", "1/7d", timedelta(days=7))
    advance(server, timedelta(hours=17), client)  # the window: 15:12 to 16:48
    rate_limited(await client.new_order(NAME), "certificates_per_names", "1/7d",
                 timedelta(days=7) - timedelta(hours=17))
    order, _ = await ready_order(server, client, created=await client.new_order(
        NAME, replaces=cert_id(old)))
    finalized, _ = await finalize(client, order, NAME)
    assert finalized.status == 200, finalized.body
    await server.store.close()


async def test_a_marked_certificate_is_replaced_at_once_without_the_limit(
        server_factory) -> None:
    """RFC 9773 4.2, 5: an operator's mark puts the window in the past, so its
    replacement is due now and exempt from certificates_per_names."""
    server = await server_factory(**{"limits.certificates_per_names": "1/7d"})
    client = await registered(server)
    old = await issued(server, client)
    await server.store.mark_renew_early(serial_hex(old.serial_number), server.clock.now())
    order, _ = await ready_order(server, client, created=await client.new_order(
        NAME, replaces=cert_id(old)))
    finalized, _ = await finalize(client, order, NAME)
    assert finalized.status == 200, finalized.body
    await server.store.close()


def charged(response: Response) -> None:
    """429 rateLimited by certificates_per_names (RFC 8555 6.6): the order was counted."""
    doc = assert_problem(response, 429, "rateLimited")
    assert "certificates_per_names" in doc["detail"], doc["detail"]


async def revoke(client: AcmeTestClient, cert: x509.Certificate) -> None:
    revoked = await client.post(REVOKE, {"certificate": b64(cert.public_bytes(Encoding.DER))})
    assert revoked.status == 200, revoked.body


async def test_revoking_a_certificate_does_not_exempt_its_replacement(
        server_factory) -> None:
    """RFC 9773 4.2, 5: a revoked certificate's window is in the past and it may still
    be replaced, but a subscriber revokes at will: its replacement is charged to
    certificates_per_names like any order (else revoke-and-replace issues without end),
    at newOrder and again at finalize (revoked after the order was created)."""
    server = await server_factory(**{"limits.certificates_per_names": "2/7d"})
    client = await registered(server)
    old = await issued(server, client)  # 1 of 2
    order, _ = await ready_order(server, client, created=await client.new_order(
        NAME, replaces=cert_id(old)))  # not due: counted, and there is room
    await issued(server, client)  # 2 of 2
    await revoke(client, old)
    finalized, _ = await finalize(client, order, NAME)
    charged(finalized)
    await issued(server, client, OTHER)  # OTHER: 1 of 2
    latest = await issued(server, client, OTHER)  # OTHER: 2 of 2
    await revoke(client, latest)
    charged(await client.new_order(OTHER, replaces=cert_id(latest)))


async def test_an_expired_certificates_replacement_is_not_exempt(server_factory) -> None:
    """RFC 9773 4.2, 5: a certificate past its notAfter is no renewal ARI asked for (its
    window is in the past): replacing it is charged to certificates_per_names."""
    server = await server_factory(**{"limits.certificates_per_names": "1/7d",
                                     "policy.default_validity": "24h"})
    client = await registered(server)
    old = await issued(server, client)
    advance(server, timedelta(hours=25), client)
    charged(await client.new_order(NAME, replaces=cert_id(old)))


async def test_only_the_replaced_certificates_names_are_exempt(server_factory) -> None:
    """RFC 9773 5 and RFC 8555 6.6: one name in common lets an order replace a
    certificate, but only an order whose names are all the certificate's is exempt from
    certificates_per_names; a name it adds is a new certificate, charged."""
    server = await server_factory(**{"limits.certificates_per_names": "1/7d"})
    client = await registered(server)
    await issued(server, client, NAME, OTHER)  # {NAME, OTHER}: spent
    narrow = await issued(server, client, NAME)  # {NAME}: spent
    await server.store.mark_renew_early(serial_hex(narrow.serial_number), server.clock.now())
    charged(await client.new_order(NAME, OTHER, replaces=cert_id(narrow)))
    wide = await issued(server, client, OTHER, "new.bluerobin.local")
    await server.store.mark_renew_early(serial_hex(wide.serial_number), server.clock.now())
    order, _ = await ready_order(server, client, created=await client.new_order(
        OTHER, replaces=cert_id(wide)))  # {OTHER} is fresh: spent at finalize unless exempt
    await issued(server, client, OTHER)  # {OTHER}: spent
    finalized, _ = await finalize(client, order, OTHER)
    assert finalized.status == 200, finalized.body
