"""Ids the database cannot hold (a NUL character, from a URL: /acme/acct/%00 as a JWS
kid, /acme/order/%00) are ids this server does not know, on every backend: 400
accountDoesNotExist for a kid (RFC 8555 7.3.1), 404 for a resource (RFC 8555 7.1),
never a 500. PostgreSQL text cannot hold NUL at all, and an error of the database
there was a 500 with a logged traceback."""

from __future__ import annotations

import pytest

from tests.acme_client import BASE
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import assert_problem, registered


@pytest.fixture
def server(each_backend: AcmeServer) -> AcmeServer:
    return each_backend


async def test_a_kid_with_a_nul_is_account_does_not_exist(server: AcmeServer) -> None:
    client = server.client(kid=f"{BASE}/acme/acct/%00")
    assert_problem(await client.new_order("web.bluerobin.local"), 400, "accountDoesNotExist")


@pytest.mark.parametrize("path", ["/acme/order/%00", "/acme/order/x%00y", "/acme/authz/%00",
                                  "/acme/chall/%00", "/acme/cert/%00"])
async def test_a_resource_with_a_nul_in_its_id_is_not_found(server: AcmeServer, path: str
                                                            ) -> None:
    client = await registered(server)
    assert_problem(await client.post(f"{BASE}{path}"), 404, "malformed")
