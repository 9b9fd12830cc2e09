"""Building the ACME application from the configuration: the composition root.

`serve` and the in-process tests both call `build_app`, so what the tests run is
what the server runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web

from acme_ca.api.app import create_app
from acme_ca.api.context import Services
from acme_ca.api.links import Links
from acme_ca.authority.accounts import AccountService
from acme_ca.authority.authorizations import AuthorizationService
from acme_ca.authority.nonces import NonceService
from acme_ca.authority.orders import OrderService
from acme_ca.authority.revocation import RevocationService
from acme_ca.authority.supervisor import ValidationSupervisor
from acme_ca.clock import Clock
from acme_ca.config import Config
from acme_ca.pki.issuer import Issuer
from acme_ca.store.base import Store
from acme_ca.validation.base import Validator
from acme_ca.validation.http01 import Http01Validator
from acme_ca.validation.resolver import Resolver

SUPERVISOR = web.AppKey("supervisor", ValidationSupervisor)


def default_validators(config: Config) -> dict[str, Validator]:
    resolver = Resolver(config.validation.hosts, config.validation.resolvers)
    return {"http-01": Http01Validator(resolver, port=config.validation.http01_port)}


def build_app(
    config: Config,
    store: Store,
    issuer: Callable[[], Issuer],
    clock: Clock,
    validators: Mapping[str, Validator] | None = None,
) -> web.Application:
    supervisor = ValidationSupervisor(
        store,
        clock,
        validators if validators is not None else default_validators(config),
        valid_authorization_lifetime=config.policy.valid_authorization_lifetime,
    )
    services = Services(
        accounts=AccountService(store, clock, terms_of_service=config.acme.terms_of_service),
        orders=OrderService(store, clock, config.policy, issuer),
        authorizations=AuthorizationService(store, clock, supervisor),
        revocation=RevocationService(store, clock),
        nonces=NonceService(store, clock),
        links=Links(config.server.base_url),
        issuer=issuer,
        meta=config.acme,
    )
    app = create_app(services)
    app[SUPERVISOR] = supervisor

    async def run_supervisor(_: web.Application) -> AsyncIterator[None]:
        await supervisor.resume()
        yield
        await supervisor.close()

    app.cleanup_ctx.append(run_supervisor)
    return app
