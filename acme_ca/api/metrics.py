"""``GET /metrics`` on the admin listener: every metric of ``acme_ca/metrics.py`` in
Prometheus's text format (with ``serve --workers N``, all the workers' summed).

The CA certificates' expiry times are read from the current issuer at each scrape
(``metrics.CaExpiries``, never stored), so a reload (SIGHUP after ``acme-ca
intermediate renew``) shows at the next one, and the replaced intermediate is no
longer shown as the current one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from acme_ca import metrics as measured
from acme_ca.authority.ca_certificates import CaCertificates


def metrics_view(ca: CaCertificates) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``/metrics``, reading the CA certificates from ``ca``."""

    expiries = measured.CaExpiries(ca.expiries)

    async def metrics(_: web.Request) -> web.Response:
        body, content_type = measured.exposition(expiries)
        return web.Response(body=body, headers={"Content-Type": content_type,
                                                "Cache-Control": "no-store"})

    return metrics
