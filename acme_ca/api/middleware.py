"""The one middleware: problem documents, and the headers every ACME response carries.

- An AcmeProblem becomes application/problem+json with its status (RFC 7807).
- aiohttp's 404/405/413 become malformed problems (405 keeps its Allow header and
  names the route's methods: POST for ACME resources, GET for renewalInfo).
- The database out of reach (``StoreUnavailable``: down, restarting, connections
  lost) is no bug: 503 with Retry-After (RFC 7231 6.6.4, 7.1.3) and type serverInternal
  (RFC 8555 6.7), one warning line, no stack trace. The client retries later; a replica
  whose database is back answers again by itself.
- Anything else is a bug: logged with the request's id, answered serverInternal with
  that id and never a stack trace.
- Every ACME response, errors included, gets a fresh Replay-Nonce (RFC 8555 6.5),
  Link rel="index" (7.1) and, unless cacheable, Cache-Control: no-store. The nonce is
  minted before the handler runs (as Boulder's and Pebble's front ends do): a store that
  cannot mint one is answered 503 before anything is done, never with a success that
  lacks the nonce RFC 8555 6.5 requires. A renewalInfo GET (RFC 9773 4: unauthenticated,
  polled by every client for every certificate) gets none: 6.5 asks for nonces on
  POST responses, and one would cost a database write per poll.
- Every problem document is counted by type, and every request's time observed by
  endpoint (the route's template, ``endpoint``: bounded labels), in
  ``acme_ca/metrics.py``.

``origin_middleware`` runs outside it (first in the list): it gives each request its
``Origin`` (``domain/origin.py``: a request id, the client's IP, the endpoint; the JWS
check adds the account), which the audit log and the JSON logs read, and writes one
access line per request (logger ``acme_ca.access``) with the method, endpoint, status
and latency once the response is known. The client's IP is the TCP peer's: no
X-Forwarded-For is trusted, so behind a reverse proxy it is the proxy's. The endpoint
is the route's path template (``/acme/order/{id}``), never the path itself: ids and
whatever a client puts in a URL stay out of the logs (``logged_path``: the 503 and
500 lines too).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from acme_ca import metrics
from acme_ca.api.context import services_of
from acme_ca.api.health import PATHS as HEALTH_PATHS
from acme_ca.api.http_cache import RETRY_UNAVAILABLE
from acme_ca.domain.origin import Origin, current_origin, set_origin
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed, server_internal
from acme_ca.errors import StoreUnavailable

log = logging.getLogger("acme_ca.api")
access_log = logging.getLogger("acme_ca.access")

PROBLEM_JSON = "application/problem+json"
# Public, cacheable, not ACME: no nonce, no index link.
PLAIN_PATHS = frozenset({"/health", "/roots/root.pem", "/roots/chain.pem"}) | HEALTH_PATHS
NO_NONCE_ROUTES = frozenset({"renewal_info"})  # ACME GETs answered without a nonce

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(problem: AcmeProblem) -> web.Response:
    metrics.PROBLEMS.labels(problem.type.value).inc()
    response = web.Response(
        status=problem.status,
        text=json.dumps(problem.to_json()),
        content_type=PROBLEM_JSON,
    )
    response.headers.update(problem.headers)
    return response


def _http_problem(exc: web.HTTPException) -> web.Response:
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        problem = malformed(f"{exc.reason}: use {_methods(allow)} here", status=405)
        if allow:
            problem.headers["Allow"] = allow
    elif exc.status == 404:
        problem = malformed("no such resource", status=404)
    elif exc.status == 413:
        problem = malformed("the request body is too large", status=413)
    else:
        problem = malformed(exc.reason or "bad request", status=exc.status)
    return problem_response(problem)


def _methods(allow: str) -> str:
    """What a 405 tells the client to use: the route's own methods (aiohttp's Allow,
    e.g. GET for renewalInfo, RFC 9773 4.1), POST-as-GET where POST is one."""
    methods = sorted(m.strip() for m in allow.split(",") if m.strip())
    if not methods or "POST" in methods:
        return "POST (or POST-as-GET)"
    return " or ".join(methods)


def _unavailable(request: web.Request, exc: StoreUnavailable) -> web.Response:
    log.warning("%s %s: 503, the database cannot be reached: %s", request.method,
                logged_path(request), exc)
    response = problem_response(AcmeProblem(
        ProblemType.SERVER_INTERNAL, "the CA cannot reach its database now; retry later",
        status=503))
    response.headers["Retry-After"] = RETRY_UNAVAILABLE
    return response


@web.middleware
async def acme_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    acme = request.path not in PLAIN_PATHS
    services = services_of(request)
    nonce: str | None = None
    try:
        if acme and request.match_info.route.name not in NO_NONCE_ROUTES:
            nonce = await services.nonces.new()
        response = await handler(request)
    except AcmeProblem as problem:
        response = problem_response(problem)
    except StoreUnavailable as exc:
        response = _unavailable(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _http_problem(exc)
    except Exception:
        request_id = current_origin().request_id or secrets.token_hex(8)
        log.exception("request %s %s %s failed", request_id, request.method,
                      logged_path(request))
        response = problem_response(server_internal(request_id))
    # origin_middleware, which runs first, found the endpoint (current_origin)
    metrics.observe_request(current_origin().endpoint or "unmatched", started)
    if not acme:
        return response
    if nonce is not None:
        response.headers["Replay-Nonce"] = nonce
    response.headers.add("Link", services.links.index_link)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def endpoint(request: web.Request) -> str | None:
    """The route a request matched, as logs name it: its path template
    (``/acme/order/{id}``); None when no route matched (a 404)."""
    resource = request.match_info.route.resource
    return None if resource is None else resource.canonical


def logged_path(request: web.Request) -> str:
    """What a text line names a request by: its route's template (``endpoint``), or
    "(no route)"; never the path a client wrote (it could forge log lines)."""
    return endpoint(request) or "(no route)"


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Each request's ``Origin`` while it runs (and in the tasks it starts), then its
    access line. Goes first in an application's middlewares, so that the status it logs
    is the one sent, problems included."""
    previous = current_origin()
    set_origin(Origin(client_ip=request.remote, request_id=secrets.token_hex(8),
                      endpoint=endpoint(request)))
    started = time.perf_counter()
    status = 500  # what aiohttp answers for an exception that escapes every middleware
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # a redirect, or a listener that renders none
        status = exc.status
        raise
    finally:
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        access_log.info("%s %s %d %.1fms", request.method, current_origin().endpoint or "-",
                        status, latency_ms,
                        extra={"method": request.method, "status": status,
                               "latency_ms": latency_ms})
        set_origin(previous)
