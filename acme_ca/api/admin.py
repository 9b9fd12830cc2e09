"""The admin listener (``[admin] listen``): HTTPS on which every client shows a
certificate of this CA's ``admin`` profile (``acme-ca admin-cert``).

What it serves: ``/healthz`` and ``/readyz`` (``api/health.py``), ``/metrics`` in
Prometheus's format (``api/metrics.py``), and the dashboard (``api/dashboard.py``). The
guard (this module) checks the certificate before any handler runs and puts who it is
on the request (``admin_identity``); a request without one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class AdminIdentity:
    """The operator a request comes from: the admin certificate's name and serial."""

    name: str
    serial: str  # serial_hex() of the admin certificate


_IDENTITY = "acme_ca.admin_identity"


def admin_identity(request: web.Request) -> AdminIdentity:
    """The operator of a request the guard let through."""
    identity = request.get(_IDENTITY)
    if not isinstance(identity, AdminIdentity):
        raise web.HTTPForbidden(reason="an admin certificate is required")
    return identity


def set_admin_identity(request: web.Request, identity: AdminIdentity) -> None:
    request[_IDENTITY] = identity
