"""The admin listener (``[admin] listen``): HTTPS on which every client shows a
certificate of this CA's ``admin`` profile (``acme-ca admin-cert``).

What it serves: ``/healthz`` and ``/readyz`` (``api/health.py``), ``/metrics`` in
Prometheus's format (``api/metrics.py``), and the dashboard (``api/dashboard.py``). The
TLS handshake already refuses a client without a certificate of this CA (``cli/serve.py``
asks for one and trusts only this CA); the guard (this module) then checks, through the
authority (``authority/admins.py``), on every request, that the certificate is an
admin certificate on record, issued, not revoked and not expired, so that revoking it
locks the operator out at once. It puts who it is on the request (``admin_identity``)
and in the request's origin (the audit log's actor); anything else is a 403 with a
one-line reason, never a handler run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from acme_ca.api.metrics import metrics_view
from acme_ca.api.middleware import logged_path, origin_middleware
from acme_ca.authority.admins import AdminCertificates, AdminRefused
from acme_ca.authority.ca_certificates import CaCertificates
from acme_ca.domain.audit import admin_actor
from acme_ca.domain.origin import current_origin, set_actor
from acme_ca.errors import StoreUnavailable

log = logging.getLogger("acme_ca.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """The operator a request comes from: the admin certificate's name and serial."""

    name: str
    serial: str  # serial_hex() of the admin certificate


_IDENTITY = web.RequestKey("admin_identity", AdminIdentity)
ADMINS = web.AppKey("admins", AdminCertificates)


def admin_identity(request: web.Request) -> AdminIdentity:
    """The operator of a request the guard let through."""
    identity = request.get(_IDENTITY)
    if not isinstance(identity, AdminIdentity):
        raise web.HTTPForbidden(reason="an admin certificate is required")
    return identity


def set_admin_identity(request: web.Request, identity: AdminIdentity) -> None:
    request[_IDENTITY] = identity


def peer_certificate(request: web.Request) -> bytes | None:
    """The DER of the client certificate the TLS handshake received, if any."""
    transport = request.transport
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    return tls.getpeercert(binary_form=True) if tls is not None else None


def _refused(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=f"{text}\n",
                        headers={"Cache-Control": "no-store"})


@web.middleware
async def admin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only an operator's request reaches a handler; the origin names the operator."""
    request_id = current_origin().request_id  # origin_middleware's, first in the list
    try:
        operator = await request.app[ADMINS].check(peer_certificate(request))
    except AdminRefused as refused:
        log.warning("admin listener: %s %s from %s refused: %s", request.method,
                    logged_path(request), request.remote, refused)
        return _refused(403, f"403 Forbidden: {refused}")
    except StoreUnavailable:
        return _refused(503, "503 Service Unavailable: the CA cannot reach its database")
    set_admin_identity(request, AdminIdentity(operator.name, operator.serial))
    set_actor(admin_actor(operator.name, operator.serial))
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except StoreUnavailable:
        return _refused(503, "503 Service Unavailable: the CA cannot reach its database")
    except Exception:
        log.exception("admin request %s %s %s failed", request_id, request.method,
                      logged_path(request))
        return _refused(500, f"500 Internal Server Error (request {request_id})")


def create_admin_app(admins: AdminCertificates, ca: CaCertificates) -> web.Application:
    """The admin listener's application: the guard, then every admin route."""
    app = web.Application(middlewares=[origin_middleware, admin_guard])
    app[ADMINS] = admins
    app.router.add_get("/metrics", metrics_view(ca), name="metrics")
    # /healthz and /readyz: cli/wiring.build_admin_app mounts them (api/health.py)
    return app
