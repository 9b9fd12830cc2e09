"""The dashboard's one form, the revocation (issue 13 item 6; ``api/dashboard.py``
serves it): what keeps another page from submitting it in an admin's browser.

The revocation is a POST that the admin listener's client certificate authenticates;
a browser that holds the certificate would send it with a request any web page
forges (CSRF). So a POST is taken only when both hold:

- it comes from this origin: ``Sec-Fetch-Site``, when the browser sends it, is
  ``same-origin``, and ``Origin`` is present and names this listener (every current
  browser sends it with a POST);
- it carries the token of the confirmation page: the time it was issued and an HMAC
  over that time, the admin certificate's serial and the certificate's serial, keyed
  by ``authority.dashboard.form_key`` (one key in the data directory, so every worker
  checks what another one issued). A page of another origin can neither read the token
  nor compute it; the token of one certificate does not revoke another, nor does one
  admin's token serve another, and none serves after ``TOKEN_LIFETIME`` (15 minutes:
  reload the confirmation).

The POST's body must be what the form sends, ``application/x-www-form-urlencoded``;
anything else, or bytes that are no text, is a 400 page.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from aiohttp import web

from acme_ca.api.admin import AdminIdentity
from acme_ca.encoding import b64url_encode

TOKEN_LIFETIME = timedelta(minutes=15)  # a confirmation form older than this is refused
TOKEN_SKEW = timedelta(minutes=1)  # a form "from the future": another worker's clock


def form_token(key: bytes, admin: AdminIdentity, serial: str, issued: datetime) -> str:
    """The token of the revocation form of certificate ``serial`` shown to ``admin`` at
    ``issued``: that time (Unix seconds), a dot, the HMAC over it, the admin and the
    serial."""
    at = int(issued.timestamp())
    message = f"revoke\n{at}\n{admin.serial}\n{serial}".encode()
    return f"{at}.{b64url_encode(hmac.new(key, message, hashlib.sha256).digest())}"


def token_issued(key: bytes, admin: AdminIdentity, serial: str, token: str) -> datetime | None:
    """When ``token`` was issued, if it is this dashboard's token for ``serial`` shown to
    ``admin``; None otherwise."""
    at, _, _ = token.partition(".")
    if not at.isascii() or not at.isdigit() or len(at) > 12:
        return None
    try:
        issued = datetime.fromtimestamp(int(at), UTC)
    except (ValueError, OverflowError, OSError):  # past year 9999
        return None
    expected = form_token(key, admin, serial, issued)
    return issued if hmac.compare_digest(token.encode(), expected.encode()) else None


def same_origin(request: web.Request) -> bool:
    """Does the browser say the request comes from a page of this listener?"""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("Origin")
    return origin is not None and origin.lower() == f"{request.scheme}://{request.host}".lower()
