"""Each request's log lines (issue 13, item 3): an access line with the method,
endpoint, status and latency, and, in JSON, the request id, account, endpoint and
client IP on every line written while the request is handled; the request id is the
one a serverInternal problem tells the client. No secret in any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from acme_ca.api.context import SERVICES
from acme_ca.cli.logs import JsonFormatter
from acme_ca.errors import StoreUnavailable
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import NEW_ORDER, assert_problem, registered
from tests.protocol.test_eab import binding, make_key

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    """What the server has logged (DEBUG and up) since the test began, as the JSON format
    writes it: formatted as it is emitted, in the request's context."""
    caplog.set_level(logging.DEBUG, logger="acme_ca")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("acme_ca")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


def access(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "acme_ca.access"]


async def test_every_request_has_one_access_line_with_who_and_status(
        server: AcmeServer, logged: Lines) -> None:
    client = await registered(server)
    assert client.kid is not None
    account = client.kid.rsplit("/", 1)[-1]
    created = await client.new_order("web.bluerobin.local")
    assert created.status == 201
    refused = await client.post(NEW_ORDER, {"identifiers": "nonsense"})
    assert_problem(refused, 400, "malformed")
    logged = access(logged())
    posts = [line for line in logged if line["method"] == "POST"]
    assert [(p["endpoint"], p["status"]) for p in posts] == [
        ("/acme/new-account", 201), ("/acme/new-order", 201), ("/acme/new-order", 400)]
    for line in posts:
        assert line["account"] == account and line["actor"] == f"account:{account}"
        assert line["client_ip"] == "127.0.0.1"
        assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
        assert len(line["request_id"]) == 16
    assert len({line["request_id"] for line in logged}) == len(logged)  # one per request
    nonce = next(line for line in logged if line["method"] == "HEAD")
    assert nonce["endpoint"] == "/acme/new-nonce"
    assert "account" not in nonce and "actor" not in nonce  # no signer: nobody yet


async def test_an_unmatched_path_is_logged_without_its_path(
        server: AcmeServer, logged: Lines) -> None:
    """What a client puts in a URL stays out of the logs: no route, no endpoint."""
    response = await server.http.get("/acme/x-secret-looking-path")
    assert response.status == 404
    (line,) = access(logged())
    assert line["status"] == 404 and "endpoint" not in line
    assert "x-secret" not in json.dumps(logged())


async def test_a_server_internal_problem_names_the_logged_request_id(
        server: AcmeServer, logged: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 8555 6.7 serverInternal: the id the client is told is the request id of the
    traceback's line and of the access line (api/middleware)."""
    client = await registered(server)
    orders = server.app[SERVICES]().orders

    async def broken(*_: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(orders, "new_order", broken)
    response = await client.new_order("web.bluerobin.local")
    problem = assert_problem(response, 500, "serverInternal")
    logged = logged()
    failed = next(line for line in logged if line["level"] == "ERROR")
    assert failed["request_id"] in problem["detail"]
    assert "RuntimeError: a bug" in failed["exception"]
    (last,) = [line for line in access(logged) if line["status"] == 500]
    assert last["request_id"] == failed["request_id"]


async def test_no_secret_of_an_eab_new_account_is_logged(
        server: AcmeServer, logged: Lines) -> None:
    """Never in the logs: the JWS (its signature, payload), the EAB HMAC key."""
    key = await make_key(server)
    client = server.client()
    eab = binding(client, key.kid, key.hmac_key)
    assert (await client.new_account(externalAccountBinding=eab)).status == 201
    text = json.dumps(logged())
    assert logged(), "the requests were logged"
    for secret in (eab["signature"], eab["payload"], eab["protected"],
                   key.hmac_key.hex()):
        assert secret not in text


@pytest.mark.parametrize("failure", [StoreUnavailable("db down"), RuntimeError("a bug")])
async def test_a_failed_request_s_line_names_its_route_not_the_client_s_path(
        server: AcmeServer, logged: Lines, monkeypatch: pytest.MonkeyPatch,
        failure: Exception) -> None:
    """Issue 13 item 3, review finding F7: the 503 and 500 lines name the route's
    template, never the decoded path: a client's %0a would forge a line in a text log."""
    async def fails() -> str:
        raise failure

    monkeypatch.setattr(server.app[SERVICES]().nonces, "new", fails)
    forged = "/acme/x%0a2026-12-06 21:30:00,123 INFO acme_ca.access: POST /forged 200%0a"
    assert (await server.http.get(forged)).status in (500, 503)
    assert (await server.http.post("/acme/new-order")).status in (500, 503)
    lines = [line["message"] for line in logged() if line["logger"] == "acme_ca.api"]
    assert len(lines) == 2
    assert not any("forged" in line or "/acme/x" in line for line in lines), lines
    assert "GET (no route)" in lines[0] and "POST /acme/new-order" in lines[1]
