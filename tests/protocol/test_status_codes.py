"""Status codes and problem documents that a section-by-section read of RFC 8555 found
wrong (issue 9, item 7). What the same read found right is tested beside the feature
(test_http_errors.py, test_accounts.py, test_orders.py, ...) and listed in
docs/security.md, "Protocol status codes and revocation reasons"."""

from __future__ import annotations

from typing import Any

from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import assert_problem, issue, registered

TOS = "https://bluerobin.local/tos"


async def test_a_refused_identifier_is_named_in_subproblems_only(server: AcmeServer) -> None:
    """RFC 8555 6.7.1: "The "identifier" field MUST NOT be present at the top level in
    ACME problem documents. It can only be present in subproblems." Also when only one
    identifier is refused."""
    client = await registered(server)
    doc = assert_problem(await client.new_order("example.com"), 400, "rejectedIdentifier")
    assert "identifier" not in doc, doc
    assert doc["subproblems"][0]["identifier"] == {"type": "dns", "value": "example.com"}


async def test_refusing_unagreed_terms_names_the_instance(server_factory: Any) -> None:
    """RFC 8555 6.7 and 7.3.3: userActionRequired means "visit the "instance" URL", and
    its problem document MUST include an "instance" field (here the terms) beside the
    Link rel="terms-of-service"."""
    server = await server_factory(**{"acme.terms_of_service": TOS})
    try:
        refused = await server.client().new_account(termsOfServiceAgreed=False)
        doc = assert_problem(refused, 403, "userActionRequired")
        assert doc.get("instance") == TOS, doc
        assert f'<{TOS}>;rel="terms-of-service"' in refused.headers.getall("Link")
    finally:
        await server.store.close()


async def test_post_as_get_resources_refuse_a_payload(server: AcmeServer) -> None:
    """RFC 8555 6.3: an order, a certificate and the orders list are read with
    POST-as-GET, whose payload is empty; any other payload is malformed (400), as in
    Pebble's validPOSTAsGET. Checked and found right; kept so that it stays so."""
    client = await registered(server)
    order, _ = await issue(server, client, "web.bluerobin.local")
    for url in (client.kid + "/orders", order["certificate"]):
        assert (await client.post(str(url))).status == 200
        assert_problem(await client.post(str(url), {}), 400, "malformed")
    created = await client.new_order("api.bluerobin.local")
    assert_problem(await client.post(created.headers["Location"], {}), 400, "malformed")
