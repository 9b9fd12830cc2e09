"""What the security review of the dashboard (issue 13 item 6) found in its requests: a
page time that overflows, a revocation body that is no form, a confirmation that never
expired. Each gives a page that says what to do, never a 500, on both backends where
the store is read."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from acme_ca.api.dashboard import add_dashboard_routes
from acme_ca.authority.dashboard import Dashboard, form_key
from acme_ca.authority.revocation import RevocationService
from acme_ca.domain.models import CertificateStatus
from tests.api.test_dashboard import Admin, admin, as_admin  # noqa: F401 (a fixture)
from tests.protocol.conftest import server_factory  # noqa: F401 (a fixture)
from tests.store.pg import fresh_database

OVERFLOWING = ["9999-12-31T23:59:59-14:00 x", "0001-01-01T00:00:00+14:00 x"]


async def _accounts_page(factory: Callable[..., Any], aiohttp_client: Any,
                         tmp_path: Any, before: str, **settings: str) -> tuple[int, str]:
    acme = await factory(**settings)
    try:
        app = web.Application(middlewares=[as_admin])
        add_dashboard_routes(app, Dashboard(acme.store, acme.clock,
                                            RevocationService(acme.store, acme.clock)),
                             form_key(tmp_path / "data"))
        http = await aiohttp_client(app)
        response = await http.get("/dashboard/accounts", params={"before": before})
        return response.status, await response.text()
    finally:
        await acme.store.close()


@pytest.mark.parametrize("before", OVERFLOWING)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_page_time_that_overflows_in_utc_is_a_400(
        server_factory: Callable[..., Any], aiohttp_client: Any, tmp_path: Any,  # noqa: F811
        backend: str, before: str):
    """Review of issue 13 item 6 (low): ``before=9999-12-31T23:59:59-14:00`` is a valid
    ISO time that does not exist in UTC; the store's conversion raised OverflowError, a
    500 on both backends. It is the "Not a page" 400 page."""
    if backend == "sqlite":
        status, body = await _accounts_page(server_factory, aiohttp_client, tmp_path, before)
    else:
        async with fresh_database() as url:
            status, body = await _accounts_page(server_factory, aiohttp_client, tmp_path,
                                                before, **{"storage.url": url})
    assert (status, "Not a page" in body) == (400, True), body


SAME = {"Sec-Fetch-Site": "same-origin"}


@pytest.mark.parametrize(("case", "body", "content_type"), [
    ("multipart without a boundary", b"x", "multipart/form-data"),
    ("multipart with a boundary", b"--b\r\n\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    ("bad urlencoded bytes", b"token=%ff%fe&reason=\xff", "application/x-www-form-urlencoded"),
    ("json", b'{"token": 1}', "application/json"),
    ("no type", b"token=x", ""),
])
async def test_a_revocation_body_that_is_no_form_is_a_400(admin: Admin, case: str,  # noqa: F811
                                                           body: bytes, content_type: str):
    """Review of issue 13 item 6 (low): a revocation POST whose body is no urlencoded
    form (what the confirmation page's form sends) was a 500 (multipart without a
    boundary, bytes that are no UTF-8); it is a 400 page, and nothing is revoked."""
    headers = {"Origin": admin.origin, **SAME}
    if content_type:
        headers["Content-Type"] = content_type
    response = await admin.http.post(f"/dashboard/certificates/{admin.serial}/revoke",
                                     data=body, headers=headers, allow_redirects=False)
    assert response.status == 400, (case, await response.text())
    assert "Not a form" in await response.text()
    assert (await admin.acme.store.get_certificate(admin.serial)).status \
        is CertificateStatus.ISSUED


async def test_the_confirmation_expires_after_15_minutes(admin: Admin):  # noqa: F811
    """Review of issue 13 item 6 (low): the form's token never expired, so a token seen
    once (a page left open, a screenshot, a proxy's log) revoked for ever. It carries
    the time it was issued, under the HMAC; after 15 minutes it is refused with a page
    that says to reload the confirmation, and a fresh one works."""
    old = await admin.token(admin.serial)
    admin.acme.clock.advance(timedelta(minutes=15, seconds=1))
    response = await admin.revoke(admin.serial, old)
    assert response.status == 403
    text = await response.text()
    assert "expired" in text and "reload" in text
    assert (await admin.acme.store.get_certificate(admin.serial)).status \
        is CertificateStatus.ISSUED
    issued, mac = old.split(".", 1)
    forged = f"{int(issued) + 3600}.{mac}"  # a later time under the old HMAC
    for wrong in (forged, f"999999999999.{mac}", f"-1.{mac}", f"\u0661.{mac}"):
        assert (await admin.revoke(admin.serial, wrong)).status == 403, wrong
    fresh = await admin.token(admin.serial)
    admin.acme.clock.advance(timedelta(minutes=14))
    assert (await admin.revoke(admin.serial, fresh)).status == 303
    assert re.fullmatch(r"\d+\.[A-Za-z0-9_-]{43}", fresh)
