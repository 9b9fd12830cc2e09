"""``GET /metrics`` on the admin listener: every metric of ``acme_ca/metrics.py`` in
Prometheus's text format (with ``serve --workers N``, all the workers' summed).

The CA certificates' expiry times are read from the current issuer at each scrape,
so a reload (SIGHUP after ``acme-ca intermediate renew``) shows at the next one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from acme_ca import metrics as measured
from acme_ca.authority.ca_certificates import CaCertificates


def metrics_view(ca: CaCertificates) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``/metrics``, reading the CA certificates from ``ca``."""

    async def metrics(_: web.Request) -> web.Response:
        for role, fingerprint, not_after in ca.expiries():
            measured.CA_CERTIFICATE_EXPIRY.labels(role, fingerprint).set(not_after.timestamp())
        body, content_type = measured.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type,
                                                "Cache-Control": "no-store"})

    return metrics
