"""The dashboard's pages, in process (issue 13 item 6): an admin application with the
dashboard's routes over the store of a real in-process ACME server (build_app), which
issued a certificate and failed a validation through the protocol. The admin guard
(mTLS, integration/test_dashboard.py) is stood in for by a middleware that sets the
admin identity, as the guard does.

What is checked: every page answers HTML with the security headers; what ACME clients
control (contacts, names, problem details) is printed escaped; the revocation needs
the confirmation page's token and a same-origin POST, and a cross-site POST is refused.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from acme_ca.api.admin import AdminIdentity, set_admin_identity
from acme_ca.api.dashboard import SECURITY_HEADERS, add_dashboard_routes, until
from acme_ca.api.dashboard_chart import issuance_chart, nice_top, tick_step
from acme_ca.authority.dashboard import Dashboard, HourCount, form_key
from acme_ca.authority.revocation import RevocationService
from acme_ca.domain.audit import admin_actor
from acme_ca.domain.models import Account, AccountStatus, CertificateStatus, EabKey, serial_hex
from acme_ca.domain.origin import set_actor
from acme_ca.store.base import Store
from tests.protocol.conftest import AcmeServer, server_factory  # noqa: F401 (a fixture)
from tests.protocol.helpers import http01, issue, leaf_of, registered
from tests.store.conftest import make_record

ALICE = AdminIdentity("alice", "a11ce")
BOB = AdminIdentity("bob", "b0b")
PAGES = ("/dashboard/", "/dashboard/certificates", "/dashboard/revocations",
         "/dashboard/accounts", "/dashboard/eab", "/dashboard/validations")
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
ESCAPED = "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"


@web.middleware
async def as_admin(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
    """What the admin guard does once a certificate checks out (test only): the header
    X-Test-Admin picks who, "nobody" for a request without an admin certificate."""
    who = request.headers.get("X-Test-Admin", "alice")
    if who != "nobody":
        identity = BOB if who == "bob" else ALICE
        set_admin_identity(request, identity)
        set_actor(admin_actor(identity.name, identity.serial))
    return await handler(request)


@dataclass
class Admin:
    http: TestClient
    acme: AcmeServer
    serial: str  # a certificate issued through ACME

    @property
    def origin(self) -> str:
        return str(self.http.make_url("/")).rstrip("/")

    async def page(self, path: str, **headers: str) -> tuple[int, str, Any]:
        response = await self.http.get(path, headers=headers, allow_redirects=False)
        return response.status, await response.text(), response.headers

    async def revoke(self, serial: str, token: str | None, reason: str = "keyCompromise",
                     **headers: str) -> Any:
        form = {"reason": reason} | ({} if token is None else {"token": token})
        headers = {"Origin": self.origin, "Sec-Fetch-Site": "same-origin"} | headers
        return await self.http.post(f"/dashboard/certificates/{serial}/revoke", data=form,
                                    headers={k: v for k, v in headers.items() if v},
                                    allow_redirects=False)

    async def token(self, serial: str, **headers: str) -> str:
        status, body, _ = await self.page(f"/dashboard/certificates/{serial}/revoke",
                                          **headers)
        assert status == 200, body
        found = re.search(r'name="token" value="([^"]+)"', body)
        assert found, body
        return found.group(1)


async def hostile_records(store: Store, now: Any) -> None:
    """What a hostile client (or a tampered database) could leave: markup in a
    contact, in a certificate's names, in an EAB label."""
    await store.create_account(Account(
        id="hostile", status=AccountStatus.VALID, jwk="{}", thumbprint="hostile-thumb",
        contact=(f"mailto:{HOSTILE}",), terms_agreed=True, created_at=now))
    await store.create_eab_key(EabKey("kid-hostile", HOSTILE, b"k" * 32, now,
                                      domains=(HOSTILE,)))
    await store.reserve_serial(make_record(
        "bad", names=(HOSTILE,), created_at=now, not_before=now,
        not_after=now + timedelta(days=3), account_id="hostile", order_id=None))
    await store.store_certificate("bad", b"<not DER>" + HOSTILE.encode())
    await store.revoke_certificate("bad", 4, now)


@pytest.fixture
async def admin(server_factory: Callable[..., Any],  # noqa: F811 (the fixture imported)
                aiohttp_client: Any, tmp_path: Any) -> Any:
    acme = await server_factory()
    try:
        client = await registered(acme, contact=["mailto:ops@bluerobin.local"])
        _, pem = await issue(acme, client, "web.bluerobin.local")
        failing = await client.new_order("fail.bluerobin.local")  # served nothing: invalid
        authz = (await client.post(failing.json()["authorizations"][0])).json()
        await client.post(http01(authz["challenges"])["url"], {})
        await acme.settle()
        await hostile_records(acme.store, acme.clock.now())
        app = web.Application(middlewares=[as_admin])
        dashboard = Dashboard(acme.store, acme.clock, RevocationService(acme.store, acme.clock))
        add_dashboard_routes(app, dashboard, form_key(tmp_path / "data"))
        http = await aiohttp_client(app)
        yield Admin(http, acme, serial_hex(leaf_of(pem).serial_number))
    finally:
        await acme.store.close()


async def test_every_page_is_html_with_the_security_headers(admin: Admin):
    """Issue 13 item 6 (pages: overview, certificates, a certificate, accounts, EAB keys,
    revocations, failed validations) and the brief's headers: a CSP without
    'unsafe-inline', no framing, no caching, no sniffing."""
    for path in (*PAGES, f"/dashboard/certificates/{admin.serial}",
                 f"/dashboard/certificates/{admin.serial}/revoke",
                 "/dashboard/accounts?status=valid", "/dashboard/validations?window=7d"):
        status, body, headers = await admin.page(path)
        assert status == 200, (path, body)
        assert headers["Content-Type"] == "text/html; charset=utf-8", path
        for name, value in SECURITY_HEADERS.items():
            assert headers[name] == value, (path, name)
        assert body.startswith("<!DOCTYPE html>") and "<script" not in body.lower(), path
    csp = SECURITY_HEADERS["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    status, css, headers = await admin.page("/dashboard/static/dashboard.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and "svg" in css
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, _, headers = await admin.page("/")
    assert (status, headers["Location"]) == (302, "/dashboard/")


async def test_the_pages_show_what_was_issued_and_failed(admin: Admin):
    """The certificate just issued through ACME is on the certificates page and has its
    own; the chart counts it; the failed challenge is counted by reason."""
    _, body, _ = await admin.page("/dashboard/certificates")
    assert admin.serial in body and "web.bluerobin.local" in body
    _, body, _ = await admin.page(f"/dashboard/certificates/{admin.serial}")
    assert "web.bluerobin.local" in body and "ECDSA P-256" in body and "issued" in body
    assert "Revoke this certificate" in body
    _, body, _ = await admin.page("/dashboard/")
    assert "<svg" in body and "2 certificates signed in the last 24 hours" in body
    _, body, _ = await admin.page("/dashboard/validations")
    assert "http-01" in body and "incorrectResponse" in body
    assert re.search(r'<td class="num">1</td>', body), body
    _, body, _ = await admin.page("/dashboard/accounts")
    assert "mailto:ops@bluerobin.local" in body


async def test_what_clients_control_is_escaped(admin: Admin):
    """The brief: names, contacts and problem details are attacker-controlled; every
    page prints them escaped (Jinja2 autoescape), never as markup."""
    seen = 0
    for path in (*PAGES, "/dashboard/certificates/bad"):
        _, body, _ = await admin.page(path)
        assert "<script>" not in body and "<img" not in body, path
        seen += body.count(ESCAPED)
    assert seen >= 4  # the contact, the EAB label and domain, the names (twice)
    _, body, _ = await admin.page("/dashboard/certificates/bad")
    assert ESCAPED in body and "revoked" in body


async def test_revoke_after_confirmation(admin: Admin):
    """Issue 13 item 6: "revoke a certificate from its page with a confirmation": the
    page links to a confirmation (GET, changes nothing), whose form POSTs the reason."""
    _, body, _ = await admin.page(f"/dashboard/certificates/{admin.serial}")
    assert f'href="/dashboard/certificates/{admin.serial}/revoke"' in body
    token = await admin.token(admin.serial)
    record = await admin.acme.store.get_certificate(admin.serial)
    assert record.status is CertificateStatus.ISSUED  # the confirmation changed nothing

    response = await admin.revoke(admin.serial, token, "superseded")

    assert response.status == 303, await response.text()
    assert response.headers["Location"] == f"/dashboard/certificates/{admin.serial}"
    record = await admin.acme.store.get_certificate(admin.serial)
    assert (record.status, record.revocation_reason) == (CertificateStatus.REVOKED, 4)
    _, body, _ = await admin.page(f"/dashboard/certificates/{admin.serial}")
    assert "superseded" in body and "Revoke this certificate" not in body
    again = await admin.revoke(admin.serial, token)
    assert again.status == 409 and "already revoked" in await again.text()


async def test_a_revocation_from_the_dashboard_is_audited_with_the_admin_as_actor(
        admin: Admin):
    """Issue 13 item 4: the audit log records "admin action[s], with who (account or
    admin certificate)": the dashboard's revoke is one certificate.revoked entry whose
    actor is the admin certificate's name and serial, by the operator."""
    response = await admin.revoke(admin.serial, await admin.token(admin.serial),
                                  "keyCompromise")
    assert response.status == 303, await response.text()

    revoked = [e for e in await admin.acme.store.audit_entries()
               if e.action == "certificate.revoked"]
    assert [(e.actor, e.serial) for e in revoked] == [
        (f"admin:{ALICE.name}:{ALICE.serial}", admin.serial)]
    assert revoked[0].details["by"] == "operator"
    assert revoked[0].details["reason"] == "keyCompromise"


@pytest.mark.parametrize(("case", "headers"), [
    ("another site", {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}),
    ("another origin, same site", {"Origin": "https://other.bluerobin.local",
                                   "Sec-Fetch-Site": "same-site"}),
    ("the browser says cross-site", {"Sec-Fetch-Site": "cross-site"}),
    ("no Origin", {"Origin": ""}),
    ("Origin null", {"Origin": "null"}),
])
async def test_a_cross_site_post_is_refused(admin: Admin, case: str, headers: dict[str, str]):
    """CSRF: a page elsewhere that makes the admin's browser POST (the browser would
    show the admin certificate) is refused even with a valid token, and nothing is
    revoked."""
    token = await admin.token(admin.serial)
    response = await admin.revoke(admin.serial, token, **headers)
    assert response.status == 403, case
    assert "nothing was revoked" in await response.text()
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert (await admin.acme.store.get_certificate(admin.serial)).status \
        is CertificateStatus.ISSUED


async def test_the_token_is_the_confirmation_of_this_certificate_for_this_admin(admin: Admin):
    """Same-origin is not enough: the POST carries the token of this certificate's
    confirmation page shown to this admin; none, another certificate's, another
    admin's, or a forged one is refused."""
    store, now = admin.acme.store, admin.acme.clock.now()
    await store.reserve_serial(make_record("7ee", created_at=now, order_id=None,
                                           account_id=None))
    await store.store_certificate("7ee", b"x")
    other_token = await admin.token("7ee")
    bob_token = await admin.token(admin.serial, **{"X-Test-Admin": "bob"})
    for token in (None, "", other_token, bob_token, "A" * 43):
        response = await admin.revoke(admin.serial, token)
        assert response.status == 403, token
        assert "not this dashboard" in await response.text()
    assert (await admin.acme.store.get_certificate(admin.serial)).status \
        is CertificateStatus.ISSUED
    bob = await admin.revoke(admin.serial, bob_token, **{"X-Test-Admin": "bob"})
    assert bob.status == 303


async def test_without_an_admin_identity_every_page_is_refused(admin: Admin):
    """A request the admin guard did not let through (no admin certificate) gets
    nothing: 403, on pages and on the revocation."""
    for path in (*PAGES, f"/dashboard/certificates/{admin.serial}",
                 "/dashboard/static/dashboard.css"):
        status, body, _ = await admin.page(path, **{"X-Test-Admin": "nobody"})
        assert status == 403, path
        assert admin.serial not in body
    response = await admin.revoke(admin.serial, "x", **{"X-Test-Admin": "nobody"})
    assert response.status == 403


async def test_operator_mistakes_are_pages_not_tracebacks(admin: Admin):
    """An unknown serial is a 404 page, text that is no serial a 400 page, an unknown
    page 404, a reason an operator may not give 400; never a 500."""
    cases = [("/dashboard/certificates/abcdef", 404, "No such certificate"),
             ("/dashboard/certificates/xyz", 400, "Not a serial number"),
             ("/dashboard/certificates?serial=not%20hex", 400, "Not a serial number"),
             ("/dashboard/accounts?status=nonsense", 400, "status must be one of"),
             ("/dashboard/accounts?before=yesterday", 400, "Not a page"),
             ("/dashboard/validations?window=1y", 400, "window must be one of"),
             ("/dashboard/nothing-here", 404, "Not Found")]
    for path, status, text in cases:
        got, body, headers = await admin.page(path)
        assert (got, text in body) == (status, True), (path, got, body)
        assert headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    wrong = await admin.http.put("/dashboard/eab")
    assert (wrong.status, wrong.headers["Allow"]) == (405, "GET,HEAD")
    status, _, headers = await admin.page(f"/dashboard/certificates?serial={admin.serial.upper()}")
    assert (status, headers["Location"]) == (303, f"/dashboard/certificates/{admin.serial}")
    token = await admin.token(admin.serial)
    response = await admin.revoke(admin.serial, token, "cACompromise")
    assert response.status == 400 and "not a reason" in await response.text()


def test_the_issuance_chart_geometry():
    """The chart (server-drawn SVG): one bar per hour, heights in proportion to a round
    top of the count axis, a label every third hour, a tooltip per bar."""
    start = datetime(2026, 12, 6, 0, tzinfo=UTC)
    hours = tuple(HourCount(start + timedelta(hours=n), n % 5) for n in range(24))
    chart = issuance_chart(hours)
    assert len(chart.bars) == 24 and chart.total == sum(n % 5 for n in range(24))
    assert [t.label for t in chart.ticks] == ["0", "1", "2", "3", "4", "5"]  # top 5
    assert chart.bars[0].height == 0 and chart.bars[4].height == pytest.approx(
        (chart.baseline - chart.ticks[-1].y) * 4 / 5, abs=0.01)
    assert [b.label for b in chart.bars[-4:]] == ["20:00", None, None, "23:00"]
    assert chart.bars[23].title == "2026-12-06 23:00-00:00 UTC: 3 certificates"
    assert chart.bars[1].title.endswith(": 1 certificate")
    empty = issuance_chart(tuple(HourCount(h.start, 0) for h in hours))
    assert [t.label for t in empty.ticks] == ["0", "1"] and empty.total == 0
    assert [nice_top(p) for p in (0, 1, 3, 7, 11, 99, 101)] == [1, 1, 5, 10, 20, 100, 200]
    assert [tick_step(top) for top in (1, 2, 5, 10, 20, 50, 100)] == [1, 1, 1, 5, 10, 10, 50]


def test_times_are_said_relative_to_now():
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    assert until(now + timedelta(days=3, hours=2), now) == "in 3 days"
    assert until(now - timedelta(hours=1, minutes=5), now) == "1 hour ago"
    assert until(now + timedelta(minutes=5), now) == "in 5 minutes"
    assert until(now - timedelta(seconds=10), now) == "just now"
