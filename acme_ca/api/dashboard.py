"""The dashboard on the admin listener (issue 13 item 6): HTML pages for operators who
would rather look than read, under ``/dashboard/``, and the one change they make there,
revoking a certificate after a confirmation.

Rendered on the server by Jinja2 with autoescaping on (``templates/``), styled by one
stylesheet served from here (``static/``): no script, no build step, nothing fetched from
elsewhere. Every text printed is escaped: names, contacts and problem details come
from ACME clients.

Every response carries headers that keep the pages to themselves (``SECURITY_HEADERS``):
a Content-Security-Policy that allows only this origin's stylesheet and forms and no
inline script or style, no framing (clickjacking), no caching, no MIME sniffing.

The revocation is a POST that the admin listener's client certificate authenticates;
a browser that holds the certificate would send it with a request any web page
forges (CSRF). So a POST is taken only when both hold:

- it comes from this origin: ``Sec-Fetch-Site``, when the browser sends it, is
  ``same-origin``, and ``Origin`` is present and names this listener (every current
  browser sends it with a POST);
- it carries the token of the confirmation page: an HMAC over the admin certificate's
  serial and the certificate's serial, keyed by ``authority.dashboard.form_key`` (one
  key in the data directory, so every worker checks what another one issued). A page
  of another origin can neither read the token nor compute it; the token of one
  certificate does not revoke another, nor does one admin's token serve another.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from acme_ca.api.admin import AdminIdentity, admin_identity
from acme_ca.api.dashboard_chart import issuance_chart
from acme_ca.authority.dashboard import (
    EXPIRING_WITHIN,
    FAILURE_WINDOWS,
    CertificateDetails,
    Dashboard,
    certificate_state,
    eab_state,
)
from acme_ca.authority.revocation import OPERATOR_REASONS, reason_name
from acme_ca.domain.models import AccountStatus, CertificateStatus, serial_from_text
from acme_ca.encoding import b64url_encode
from acme_ca.errors import Conflict, NotFound, StoreUnavailable

log = logging.getLogger("acme_ca.dashboard")

PREFIX = "/dashboard"
HERE = Path(__file__).parent
STYLESHEET = HERE / "static" / "dashboard.css"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it a browser sends "Origin: null" on the revocation's
    # POST (Fetch, "serializing a request origin"), which same_origin refuses.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

DASHBOARD = web.AppKey("dashboard", Dashboard)
FORM_KEY = web.AppKey("dashboard_form_key", bytes)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Choice = TypeVar("Choice")

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every {{ }} is HTML-escaped, .html or not
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def until(moment: datetime, now: datetime) -> str:
    """How far ``moment`` is from ``now``: "in 3 days", "5 hours ago"."""
    seconds = (moment - now).total_seconds()
    ahead, seconds = seconds >= 0, abs(seconds)
    if seconds < 60:
        return "within a minute" if ahead else "just now"
    amount, unit = ((seconds / 86400, "day") if seconds >= 86400 else
                    (seconds / 3600, "hour") if seconds >= 3600 else (seconds / 60, "minute"))
    text = f"{int(amount)} {unit}{'' if int(amount) == 1 else 's'}"
    return f"in {text}" if ahead else f"{text} ago"


_templates.filters.update(when=when, reason=reason_name)
_templates.globals.update(root=PREFIX, until=until, certificate_state=certificate_state,
                          eab_state=eab_state)


def form_token(key: bytes, admin: AdminIdentity, serial: str) -> str:
    """The token of the revocation form of certificate ``serial`` shown to ``admin``."""
    message = f"revoke\n{admin.serial}\n{serial}".encode()
    return b64url_encode(hmac.new(key, message, hashlib.sha256).digest())


def same_origin(request: web.Request) -> bool:
    """Does the browser say the request comes from a page of this listener?"""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("Origin")
    return origin is not None and origin.lower() == f"{request.scheme}://{request.host}".lower()


def render(request: web.Request, template: str, code: int = 200, **context: Any
           ) -> web.Response:
    context.setdefault("now", request.app[DASHBOARD].now())
    page = _templates.get_template(template).render(
        admin=admin_identity(request), page=template.removesuffix(".html"), **context)
    return web.Response(text=page, status=code, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    return render(request, "error.html", code=status, title=title, detail=detail)


@web.middleware
async def dashboard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The security headers on every response; an operator's mistake (an unknown
    serial, a stale form) as a page that says so, never a stack trace."""
    try:
        admin_identity(request)  # the admin guard let it through (else 403)
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.status != 403:
            response = error_page(request, exc.status, exc.reason, exc.text or exc.reason)
            if "Allow" in exc.headers:  # a 405 says what the page takes
                response.headers["Allow"] = exc.headers["Allow"]
        else:
            response = exc
    except StoreUnavailable as exc:
        log.warning("dashboard: the database is out of reach: %s", exc)
        response = error_page(request, 503, "Database unavailable",
                              "The database cannot be reached now; try again shortly.")
    response.headers.update(SECURITY_HEADERS)
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _dashboard(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]


def _serial(request: web.Request) -> str:
    try:
        return serial_from_text(request.match_info["serial"])
    except ValueError as exc:
        raise web.HTTPBadRequest(reason="Not a serial number", text=str(exc)) from None


async def overview(request: web.Request) -> web.Response:
    summary = await _dashboard(request).overview()
    return render(request, "overview.html", o=summary, now=summary.now,
                  chart=issuance_chart(summary.issuance), within=EXPIRING_WITHIN.days)


async def certificates(request: web.Request) -> web.Response:
    dashboard = _dashboard(request)
    if "serial" in request.query:  # the look-up form
        try:
            serial = serial_from_text(request.query["serial"])
        except ValueError as exc:
            return error_page(request, 400, "Not a serial number", str(exc))
        raise web.HTTPSeeOther(f"{PREFIX}/certificates/{serial}")
    return render(request, "certificates.html",
                  expiring=await dashboard.expiring(), within=EXPIRING_WITHIN.days,
                  recent=await dashboard.recent_certificates())


async def _details(request: web.Request) -> CertificateDetails:
    """The certificate the path names; a 404 page for a serial the CA does not know."""
    serial = _serial(request)
    try:
        return await _dashboard(request).certificate(serial)
    except NotFound:
        raise web.HTTPNotFound(reason="No such certificate",
                               text=f"This CA has no certificate with the serial {serial}.") \
            from None


async def certificate(request: web.Request) -> web.Response:
    details = await _details(request)
    return render(request, "certificate.html", c=details, r=details.record,
                  revocable=details.record.status is CertificateStatus.ISSUED)


async def confirm_revoke(request: web.Request) -> web.Response:
    details = await _details(request)
    serial = details.record.serial
    if details.record.status is not CertificateStatus.ISSUED:
        raise web.HTTPSeeOther(f"{PREFIX}/certificates/{serial}")
    token = form_token(request.app[FORM_KEY], admin_identity(request), serial)
    return render(request, "revoke.html", c=details, r=details.record, token=token,
                  reasons=list(OPERATOR_REASONS))


async def revoke(request: web.Request) -> web.Response:
    serial = _serial(request)
    if not same_origin(request):
        return error_page(request, 403, "Refused",
                          "This request does not come from a page of this dashboard "
                          "(Origin and Sec-Fetch-Site): nothing was revoked.")
    form = await request.post()
    expected = form_token(request.app[FORM_KEY], admin_identity(request), serial)
    if not hmac.compare_digest(str(form.get("token", "")), expected):
        return error_page(request, 403, "Refused",
                          "The confirmation form is not this dashboard's for this "
                          "certificate: open the certificate's page and revoke from there.")
    try:
        await _dashboard(request).revoke(serial, str(form.get("reason", "")))
    except ValueError as exc:
        return error_page(request, 400, "Not a reason an operator may give", str(exc))
    except NotFound as exc:
        return error_page(request, 404, "No such certificate", str(exc))
    except Conflict as exc:
        return error_page(request, 409, "Not revoked", str(exc))
    log.info("certificate %s revoked from the dashboard by %s", serial,
             admin_identity(request).name)
    raise web.HTTPSeeOther(f"{PREFIX}/certificates/{serial}")


async def revocations(request: web.Request) -> web.Response:
    dashboard = _dashboard(request)
    return render(request, "revocations.html", revoked=await dashboard.revocations())


async def accounts(request: web.Request) -> web.Response:
    dashboard = _dashboard(request)
    status = _choice(request.query, "status", {s.value: s for s in AccountStatus})
    before = None
    if "before" in request.query:  # "created_at id" of the last account of a page
        text, _, last = request.query["before"].partition(" ")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None or not last:
            return error_page(request, 400, "Not a page",
                              "before= is not the time and id of an account.")
        before = (moment, last)
    page = await dashboard.accounts(status, before)
    return render(request, "accounts.html", accounts=page,
                  counts=await dashboard.account_counts(), status=status,
                  statuses=[s.value for s in AccountStatus])


async def eab_keys(request: web.Request) -> web.Response:
    dashboard = _dashboard(request)
    return render(request, "eab.html", keys=await dashboard.eab_keys())


async def validations(request: web.Request) -> web.Response:
    dashboard = _dashboard(request)
    window = _choice(request.query, "window", {w: w for w in FAILURE_WINDOWS}) or "24h"
    failures = await dashboard.failed_validations(window)
    return render(request, "validations.html", failures=failures,
                  window=window, windows=list(FAILURE_WINDOWS),
                  peak=max((f.count for f in failures), default=0))


async def stylesheet(_: web.Request) -> web.Response:
    return web.Response(body=STYLESHEET.read_bytes(), content_type="text/css",
                        charset="utf-8")


def _choice(query: Mapping[str, str], name: str, choices: Mapping[str, Choice]) -> Choice | None:
    """The query parameter ``name`` if given, one of ``choices``; 400 otherwise."""
    if name not in query or query[name] == "":
        return None
    if query[name] not in choices:
        raise web.HTTPBadRequest(reason=f"Unknown {name}",
                                 text=f"{name} must be one of: {', '.join(choices)}")
    return choices[query[name]]


async def to_dashboard(_: web.Request) -> web.Response:
    raise web.HTTPFound(f"{PREFIX}/")


def add_dashboard_routes(app: web.Application, dashboard: Dashboard, form_key: bytes) -> None:
    """The dashboard under ``/dashboard/`` of the admin application ``app`` (whose guard
    sets the admin identity), and ``/`` leading there. ``form_key``:
    ``authority.dashboard.form_key`` of the data directory."""
    pages = web.Application(middlewares=[dashboard_middleware])
    pages[DASHBOARD] = dashboard
    pages[FORM_KEY] = form_key
    r = pages.router
    r.add_get("/", overview)
    r.add_get("/certificates", certificates)
    r.add_get("/certificates/{serial}", certificate)
    r.add_get("/certificates/{serial}/revoke", confirm_revoke)
    r.add_post("/certificates/{serial}/revoke", revoke)
    r.add_get("/revocations", revocations)
    r.add_get("/accounts", accounts)
    r.add_get("/eab", eab_keys)
    r.add_get("/validations", validations)
    r.add_get("/static/dashboard.css", stylesheet)
    app.add_subapp(PREFIX, pages)
    app.router.add_get("/", to_dashboard)
