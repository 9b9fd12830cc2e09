"""Finalize applies the identifier policy again (RFC 8555 7.4): an order made before
`[policy] denied_domains` changed, or before a SIGHUP loaded an intermediate with
narrower name constraints, gets no certificate. The refusal is rejectedIdentifier and
the order becomes invalid, its error saying why (7.1.6: the certificate will not be
issued), since no CSR could ever satisfy it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509

from acme_ca.cli.serve import IssuerHolder
from acme_ca.pki.constraints import first_forbidden
from acme_ca.pki.issuer import Issuer
from tests.acme_client import AcmeTestClient
from tests.conftest import reissue_intermediate
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import assert_problem, finalize, ready_order, registered

NAME = "www.bluerobin.local"


async def assert_refused_and_invalid(client: AcmeTestClient, order: dict[str, Any],
                                     order_url: str, fragment: str) -> None:
    response, _ = await finalize(client, order, NAME)
    doc = assert_problem(response, 400, "rejectedIdentifier")
    assert fragment in doc["detail"], doc
    assert [s["identifier"]["value"] for s in doc.get("subproblems", [])] == [NAME], doc
    after = (await client.post(order_url)).json()
    assert after["status"] == "invalid", after
    assert after["error"]["type"].endswith(":rejectedIdentifier"), after
    assert "certificate" not in after


async def test_finalize_after_a_narrower_intermediate_is_refused(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any]) -> None:
    """A SIGHUP loads an intermediate that excludes the order's name (RFC 5280
    4.2.1.10): the certificate would not verify, so finalize refuses it."""
    hierarchy = make_hierarchy("pki")
    server = await server_factory(hierarchy)
    client = await registered(server)
    order, order_url = await ready_order(server, client, NAME)
    reissue_intermediate(hierarchy.paths, x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("bluerobin.local")],
        excluded_subtrees=[x509.DNSName(NAME)]))
    assert await server.reload()
    await assert_refused_and_invalid(client, order, order_url, "name constraints")
    await server.store.close()


async def test_finalize_after_the_name_was_denied_is_refused(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any]) -> None:
    """The operator adds the name to [policy] denied_domains and restarts: an order made
    before is refused at finalize as a new one is at newOrder (Boulder re-checks
    policy at finalize too: ra.validateFinalizeRequest -> csr.VerifyCSR ->
    WillingToIssue)."""
    hierarchy = make_hierarchy("pki")
    before: AcmeServer = await server_factory(hierarchy)
    client = await registered(before)
    order, order_url = await ready_order(before, client, NAME)
    await before.store.close()
    after = await server_factory(hierarchy, **{"policy.denied_domains": [NAME]})
    same_account = after.client(key=client.key, kid=client.kid)
    await assert_refused_and_invalid(same_account, order, order_url, "denied domain")
    await after.store.close()


async def test_a_reload_during_finalize_never_mixes_intermediates(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGHUP reload lands while a finalize runs, just after it first read the
    intermediate: the certificate is signed by the intermediate its policy, name
    constraints (RFC 5280 4.2.1.10) and window were checked against, never by one read
    later, here one whose name constraints exclude the name (RFC 8555 7.4: the CA
    issues what it checked)."""
    server = await server_factory(make_hierarchy("pki"))
    client = await registered(server)
    order, order_url = await ready_order(server, client, NAME)
    checked = server.issuers.current
    other = make_hierarchy("other", permitted_domains=("elsewhere.local",)).paths
    reloaded = Issuer.load(other.intermediate_cert, other.intermediate_key, other.chain,
                           None, server.clock.now())
    assert first_forbidden(reloaded.certificate, [NAME]) == NAME

    def reload_after_the_first_read(holder: IssuerHolder) -> Issuer:
        read, holder.current = holder.current, reloaded
        return read

    monkeypatch.setattr(IssuerHolder, "__call__", reload_after_the_first_read)
    response, _ = await finalize(client, order, NAME)
    assert response.status == 200, response.body
    stored = await server.store.get_order(order_url.rsplit("/", 1)[-1])
    assert stored.certificate_serial is not None
    record = await server.store.get_certificate(stored.certificate_serial)
    assert record.issuer == checked.fingerprint, "signed by an intermediate read later"
    x509.load_der_x509_certificate(record.der or b"").verify_directly_issued_by(
        checked.certificate)
    await server.store.close()
