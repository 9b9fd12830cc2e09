"""OCSP over HTTP (RFC 6960 appendix A.1), on the plain-HTTP listener of relying parties.

    POST /ocsp              the DER request as the body (application/ocsp-request)
    GET  /ocsp/<request>    the DER request, base64 (RFC 4648 4), URL-encoded

Either way the answer is ``200 application/ocsp-response``, an unsuccessful OCSP
status included (malformedRequest for a body or path that is not a request): a relying
party reads the OCSP status, not the HTTP one. HTTP errors are kept for what is not an
OCSP exchange at all: another method (405), a body over ``MAX_REQUEST`` (413). A
failure of the responder itself (a bug) is an ``internalError`` response, logged in
one line.

The base64 of a GET may hold '/' and '+', escaped (%2F, %2B) or not; the path is read
undecoded and unescaped once, so neither a '/' nor a '+' is lost (a '+' is never a
space in a path). URL-safe base64 ('-', '_') and missing padding are taken too.

Caching (RFC 5019 6.2): a successful response carries Last-Modified (thisUpdate),
Expires (nextUpdate), an ETag (a digest of the response) and Cache-Control
``public, no-transform, must-revalidate, max-age`` up to its nextUpdate and at most
``http_cache.MAX_AGE``, so a cache between a relying party and the CA hides a
revocation for minutes at most, as for the CRL. A response that echoes a nonce answers one request
only, and an unsuccessful one may change at once: both are ``no-store``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from email.utils import format_datetime
from urllib.parse import unquote

from aiohttp import web

from acme_ca.api.http_cache import CLOCK, max_age_seconds
from acme_ca.authority.ocsp import (
    INTERNAL_ERROR,
    MALFORMED,
    OCSP_ROUTE,
    OcspAnswer,
    OcspResponder,
)
from acme_ca.clock import Clock

OCSP_RESPONSE = "application/ocsp-response"
MAX_REQUEST = 8 * 1024  # octets: a one-certificate request is about 100

log = logging.getLogger(__name__)

RESPONDER = web.AppKey("ocsp_responder", OcspResponder)


def add_routes(app: web.Application, responder: OcspResponder, clock: Clock) -> None:
    """POST ``/ocsp`` and GET ``/ocsp/<base64 request>`` on ``app``; ``clock``: what
    the caching headers count from (the responder's)."""
    app[RESPONDER] = responder
    app[CLOCK] = clock
    app.router.add_post(OCSP_ROUTE, post)
    app.router.add_get(OCSP_ROUTE + "/{request:.*}", get)


async def post(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_REQUEST:
        return _too_large()
    body = bytearray()  # read() returns what has arrived (chunked, split writes): loop
    while chunk := await request.content.read(MAX_REQUEST + 1 - len(body)):
        body += chunk
        if len(body) > MAX_REQUEST:
            return _too_large()
    return await _answer(request, bytes(body))


async def get(request: web.Request) -> web.Response:
    prefix = OCSP_ROUTE + "/"
    raw = request.raw_path.split("?", 1)[0]
    if not raw.startswith(prefix):  # the path was normalized on its way: take the match
        text = request.match_info["request"]
    else:
        text = unquote(raw[len(prefix):])
    der = _base64(text)
    if der is None or len(der) > MAX_REQUEST:
        return _response(MALFORMED, request)
    return await _answer(request, der)


def _base64(text: str) -> bytes | None:
    """The request's DER from its base64 (standard or URL-safe alphabet, padded or not);
    None when it is not base64."""
    text = text.strip().replace(" ", "+").translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


async def _answer(request: web.Request, der: bytes) -> web.Response:
    try:
        answer = await request.app[RESPONDER].answer(der)
    except Exception as exc:  # a bug, never the client's fault: internalError, one line
        log.error("OCSP: answering a request failed: %s: %s", type(exc).__name__, exc)
        answer = INTERNAL_ERROR
    return _response(answer, request)


def _response(answer: OcspAnswer, request: web.Request) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if answer.this_update is not None and answer.next_update is not None and not answer.nonce:
        max_age = max_age_seconds(answer.next_update, request.app[CLOCK].now())
        headers = {
            "Cache-Control": f"public, no-transform, must-revalidate, "
                             f"max-age={max_age}",
            "Last-Modified": format_datetime(answer.this_update, usegmt=True),
            "Expires": format_datetime(answer.next_update, usegmt=True),
            "ETag": f'"{hashlib.sha256(answer.der).hexdigest()[:32]}"',
        }
    return web.Response(body=answer.der, content_type=OCSP_RESPONSE, headers=headers)


def _too_large() -> web.Response:
    return web.Response(status=413, text=f"an OCSP request is at most {MAX_REQUEST} octets\n",
                        headers={"Cache-Control": "no-store"})
