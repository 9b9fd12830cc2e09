"""/healthz and /readyz on the ACME listener (issue 13 item 1): plain paths (no nonce,
no index link), never cached, JSON; /readyz 503 naming each failing check, never a
traceback; the older /health answers as before."""

from __future__ import annotations

from datetime import timedelta

from acme_ca.api.health import READINESS
from tests.protocol.conftest import AcmeServer


async def test_healthz_answers_without_the_store(server: AcmeServer):
    """Liveness reads nothing: it answers with the database closed."""
    await server.store.close()
    resp = await server.http.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Replay-Nonce" not in resp.headers and "Link" not in resp.headers


async def test_readyz_is_200_while_every_check_passes(server: AcmeServer):
    """The app's own background work holds the lease from its start."""
    resp = await server.http.get("/readyz")
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"status": "ready", "checks": {
        "store": "ok", "signing": "ok", "certificates": "ok", "background_lease": "ok"}}
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.content_type == "application/json"
    assert "Replay-Nonce" not in resp.headers
    assert (await server.http.head("/readyz")).status == 200


async def test_readyz_is_503_naming_what_fails_once_the_store_is_gone(server: AcmeServer):
    await server.store.close()
    resp = await server.http.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "not ready"
    assert set(body["failing"]) == {"store", "background_lease"}
    assert body["checks"]["signing"] == "ok"
    assert "Traceback" not in await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"


async def test_readyz_is_503_when_the_intermediate_is_29_days_from_expiry(server: AcmeServer):
    """The server's own clock (injected) decides."""
    server.clock.advance(server.issuer.certificate.not_valid_after_utc - server.clock.now()
                         - timedelta(days=29))
    resp = await server.http.get("/readyz")
    assert resp.status == 503
    assert set((await resp.json())["failing"]) == {"certificates"}


async def test_the_older_health_still_answers(server: AcmeServer):
    resp = await server.http.get("/health")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


def test_readiness_is_reachable_for_other_listeners(server: AcmeServer):
    """The admin listener mounts the same checks (``mount_health``) and may reuse them."""
    assert server.app[READINESS] is not None
