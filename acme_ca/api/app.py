"""The aiohttp application: routes and the services they call, all built outside."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web, web_response

from acme_ca.api import handlers
from acme_ca.api.context import SERVICES, Services
from acme_ca.api.links import ROUTES
from acme_ca.api.middleware import acme_middleware, origin_middleware

MAX_BODY = 64 * 1024
SERVER = "acme-ca"  # the Server header: the product, never the versions behind it


def create_app(services: Callable[[], Services]) -> web.Application:
    """The ACME application over ``services`` (those of the moment: ``api/context.py``)."""
    # aiohttp gives every response it prepares without a Server header "Python/3.x
    # aiohttp/3.y", the 400 its parser sends for a request that is not HTTP included
    # (which no middleware or signal sees). It has no setting for it (aio-libs/aiohttp
    # #3607): the default is this module global. tests/protocol/test_server_header.py
    web_response.SERVER_SOFTWARE = SERVER
    app = web.Application(client_max_size=MAX_BODY,
                          middlewares=[origin_middleware, acme_middleware])
    app[SERVICES] = services
    r = app.router
    r.add_get("/health", handlers.health)
    r.add_get(ROUTES["root"], handlers.root_certificate)
    r.add_get(ROUTES["chain"], handlers.ca_chain)
    r.add_get(ROUTES["directory"], handlers.directory)
    r.add_route("HEAD", ROUTES["new_nonce"], handlers.new_nonce)
    r.add_get(ROUTES["new_nonce"], handlers.new_nonce, allow_head=False)
    r.add_post(ROUTES["new_account"], handlers.new_account)
    r.add_post(ROUTES["account"], handlers.account)
    r.add_post(ROUTES["account_orders"], handlers.account_orders)
    r.add_post(ROUTES["key_change"], handlers.key_change)
    r.add_post(ROUTES["new_order"], handlers.new_order)
    r.add_post(ROUTES["order"], handlers.order)
    r.add_post(ROUTES["finalize"], handlers.finalize)
    r.add_post(ROUTES["authorization"], handlers.authorization)
    r.add_post(ROUTES["challenge"], handlers.challenge)
    r.add_post(ROUTES["certificate"], handlers.certificate)
    r.add_post(ROUTES["certificate_alternate"], handlers.certificate)
    r.add_post(ROUTES["revoke_cert"], handlers.revoke_cert)
    r.add_get(ROUTES["renewal_info"], handlers.renewal_info, allow_head=False,
              name="renewal_info")  # the middleware mints it no nonce
    return app
