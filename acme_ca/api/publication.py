"""The plain-HTTP listener relying parties use ([revocation] http_listen): what the CA
publishes, at the URLs its leaves carry (``pki/publication.py``).

    GET /crl/<issuer id>.crl   the intermediate's full CRL, DER, application/pkix-crl
                               (RFC 5280 4.2.1.13: a DER CRL over http)
    GET /ca/<issuer id>.crt    the intermediate's certificate, DER, application/pkix-cert
                               (RFC 5280 4.2.2.1 caIssuers)
    /ocsp                      the OCSP responder (RFC 6960), when one is given
                               (``api/ocsp.py``'s ``add_routes``)

HEAD answers as GET without a body. Plain HTTP because relying parties fetch CRLs over
http (RFC 5280 4.2.1.13; an https CRL URL would need revocation checking to check it);
what is served is signed, so the channel adds nothing.

Caching: a CRL carries ETag (its number) and Last-Modified (its thisUpdate), and
Cache-Control max-age never reaching past its nextUpdate, and at most
``http_cache.MAX_AGE``: the CA publishes a new CRL within seconds of a revocation, and
a cache between a relying party and the CA should not hide it for long. A CRL is
revalidated by its number only (If-None-Match, weak comparison, RFC 9110 13.1.2): its
thisUpdate may go back once (a CRL dated in the future replaced,
``authority/crls.py``), so If-Modified-Since could make a newer CRL a 304; a
certificate honours both. A conditional header that cannot be parsed is ignored (RFC
9110 13.1.3). Every answer says ``X-Content-Type-Options: nosniff``. An unknown
issuer, or one with no CRL yet, is a 404 with a one-line text body that does not
repeat the request; the database out of reach a 503 with Retry-After, unless this
process holds the CRL and its nextUpdate has not passed (``PublishedCrls``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web, web_response

from acme_ca.api.app import SERVER
from acme_ca.api.http_cache import CLOCK, RETRY_UNAVAILABLE, max_age_seconds
from acme_ca.api.middleware import logged_path
from acme_ca.api.ocsp import add_routes as add_ocsp_routes
from acme_ca.authority.ocsp import OcspResponder
from acme_ca.authority.published_crls import CRL_ROUTE, ISSUER_ROUTE, PublishedCrls
from acme_ca.clock import Clock
from acme_ca.errors import StoreUnavailable

log = logging.getLogger("acme_ca.api.publication")

PKIX_CRL = "application/pkix-crl"  # RFC 5280 4.2.1.13 / RFC 2585
PKIX_CERT = "application/pkix-cert"
CERT_MAX_AGE = timedelta(days=1)  # an issuer id names one certificate for good

PUBLISHED = web.AppKey("published", PublishedCrls)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_publication_app(
    published: PublishedCrls, clock: Clock, ocsp: OcspResponder | None = None
) -> web.Application:
    """The application of the plain-HTTP listener; ``ocsp``: the OCSP responder, whose
    routes ``api/ocsp.py`` adds (none without it)."""
    web_response.SERVER_SOFTWARE = SERVER  # as the ACME app: no versions (api/app.py)
    app = web.Application(middlewares=[_plain_errors])
    app.on_response_prepare.append(_no_sniffing)
    app[PUBLISHED] = published
    app[CLOCK] = clock
    app.router.add_get(CRL_ROUTE, crl)
    app.router.add_get(ISSUER_ROUTE, issuer_certificate)
    if ocsp is not None:  # the OCSP responder (RFC 6960 A.1: GET and POST)
        add_ocsp_routes(app, ocsp, clock)
    return app


async def crl(request: web.Request) -> web.StreamResponse:
    short = request.match_info["issuer"]
    found = await request.app[PUBLISHED].crl(short)
    if found is None:
        return _not_found("no CRL for that issuer")
    max_age = max_age_seconds(found.next_update, request.app[CLOCK].now())
    return _published(request, found.der, PKIX_CRL, etag=f'"{found.number:x}"',
                      modified=found.this_update, max_age=max_age, by_date=False)


async def issuer_certificate(request: web.Request) -> web.StreamResponse:
    short = request.match_info["issuer"]
    found = request.app[PUBLISHED].certificate(short)
    if found is None:
        return _not_found("no such CA certificate")
    der, not_before = found
    return _published(request, der, PKIX_CERT, etag=f'"{short}"', modified=not_before,
                      max_age=int(CERT_MAX_AGE.total_seconds()))


def _published(request: web.Request, body: bytes, content_type: str, *, etag: str,
               modified: datetime, max_age: int, by_date: bool = True) -> web.Response:
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(modified, usegmt=True),
        "Cache-Control": f"public, max-age={max_age}",
    }
    if _not_modified(request, etag, modified if by_date else None):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, headers=headers)


def _not_modified(request: web.Request, etag: str, modified: datetime | None) -> bool:
    """RFC 9110 13.1.2 and 13.2.2: If-None-Match decides when present (weak comparison:
    W/ is ignored), else If-Modified-Since (whole seconds) unless ``modified`` is None.
    A header that cannot be parsed counts as absent (13.1.3)."""
    tags = request.headers.get("If-None-Match")
    if tags is not None:
        listed = {t.strip().removeprefix("W/") for t in tags.split(",")}
        return "*" in listed or etag.removeprefix("W/") in listed
    since = request.headers.get("If-Modified-Since")
    if since is None or modified is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError, OverflowError, IndexError):
        return False
    return moment.tzinfo is not None and modified.replace(microsecond=0) <= moment


def _not_found(line: str) -> web.Response:
    return web.Response(status=404, text=line + "\n", headers={"Cache-Control": "no-store"})


async def _no_sniffing(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer, errors and aiohttp's own 404/405 included: a browser must not take
    a CRL or a one-line error for HTML."""
    response.headers["X-Content-Type-Options"] = "nosniff"


@web.middleware
async def _plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line of text for what goes wrong; never a traceback to a relying party."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except StoreUnavailable as exc:
        log.warning("%s %s: the database cannot be reached (%s)", request.method,
                    logged_path(request), exc)
        return web.Response(status=503, text="the database cannot be reached; retry later\n",
                            headers={"Retry-After": RETRY_UNAVAILABLE})
    except Exception:
        log.exception("%s %s failed", request.method, logged_path(request))
        return web.Response(status=500, text="internal error\n")
