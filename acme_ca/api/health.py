"""``/healthz`` and ``/readyz``: is the process up, and should it get traffic (issue 13 item 1).

- ``/healthz``: 200 and ``{"status": "ok"}`` while the process answers; it reads
  nothing (a liveness probe that fails when the database is down would restart every
  replica at once).
- ``/readyz``: 200 ``{"status": "ready", ...}`` when every check of
  ``authority/readiness.py`` passes, else 503 ``{"status": "not ready", "failing":
  {check: why}, ...}``. Never a traceback, never cached (``Cache-Control: no-store``).

``mount_health`` adds both to any application: the ACME listener's (``cli/wiring.py``)
and the admin listener's. They are plain paths there (no nonce, no index link:
``api/middleware.py``), like the older ``/health`` that stays for compatibility.
"""

from __future__ import annotations

from aiohttp import web

from acme_ca.authority.readiness import Readiness

HEALTHZ = "/healthz"
READYZ = "/readyz"
PATHS = frozenset({HEALTHZ, READYZ})
READINESS = web.AppKey("readiness", Readiness)
NO_STORE = {"Cache-Control": "no-store"}


def mount_health(app: web.Application, readiness: Readiness) -> None:
    """Serve ``/healthz`` and ``/readyz`` (GET and HEAD) on ``app``, with ``readiness``."""
    app[READINESS] = readiness
    app.router.add_get(HEALTHZ, healthz)
    app.router.add_get(READYZ, readyz)


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers=NO_STORE)


async def readyz(request: web.Request) -> web.Response:
    checks = await request.app[READINESS].checks()
    failing = {check.name: check.detail for check in checks if not check.ok}
    body: dict[str, object] = {
        "status": "not ready" if failing else "ready",
        "checks": {check.name: "ok" if check.ok else "failing" for check in checks},
    }
    if failing:
        body["failing"] = failing
    return web.json_response(body, status=503 if failing else 200, headers=NO_STORE)
