"""The aiohttp application: everything it needs is built outside and passed in."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from acme_ca.pki import files
from acme_ca.pki.issuer import Issuer

ISSUER = web.AppKey("issuer", Callable[[], Issuer])  # the current one: it changes on reload

PEM_CHAIN = "application/pem-certificate-chain"


def create_app(current_issuer: Callable[[], Issuer]) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[ISSUER] = current_issuer
    app.router.add_get("/health", health)
    app.router.add_get("/roots/root.pem", root_certificate)
    app.router.add_get("/roots/chain.pem", ca_chain)
    return app


async def health(request: web.Request) -> web.Response:
    issuer = request.app[ISSUER]()
    return web.json_response(
        {
            "status": "ok",
            "intermediate_not_after": issuer.certificate.not_valid_after_utc.isoformat(),
        },
        headers={"Cache-Control": "no-store"},
    )


async def root_certificate(request: web.Request) -> web.Response:
    """The root, for clients to trust (the guide's root-ca.crt)."""
    issuer = request.app[ISSUER]()
    return web.Response(body=files.pem(issuer.root), content_type=PEM_CHAIN)


async def ca_chain(request: web.Request) -> web.Response:
    """Intermediate then root (the guide's ca-chain.pem)."""
    issuer = request.app[ISSUER]()
    return web.Response(body=files.pem(*issuer.chain), content_type=PEM_CHAIN)
