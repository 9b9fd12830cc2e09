"""Building the server's applications from the configuration: the composition root.

``build_app`` makes the ACME application (with its validators, CAA check and
shutdown, ``finish_in_flight``), ``build_publication_app`` the plain-HTTP CRL and
issuer publication, ``build_ocsp`` the OCSP responder, and ``build_admin_app`` with
``admin_tls_context`` the admin listener ([admin] listen: /metrics, health, the
dashboard, for admin certificates only). `serve` and the in-process tests both call
them, so what the tests run is what the server runs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from acme_ca.api.admin import create_admin_app
from acme_ca.api.app import create_app
from acme_ca.api.context import SERVICES, Services
from acme_ca.api.dashboard import add_dashboard_routes
from acme_ca.api.health import mount_health
from acme_ca.api.links import Links
from acme_ca.api.publication import create_publication_app
from acme_ca.authority.accounts import AccountService
from acme_ca.authority.admins import AdminCertificates
from acme_ca.authority.audit import Auditor
from acme_ca.authority.authorizations import AuthorizationService
from acme_ca.authority.background import BackgroundWork, Job
from acme_ca.authority.ca_certificates import CaCertificates
from acme_ca.authority.caa_recheck import CaaRecheck
from acme_ca.authority.crls import CrlPublisher
from acme_ca.authority.dashboard import Dashboard, form_key
from acme_ca.authority.expiry import EXPIRY_EVERY, Expiry
from acme_ca.authority.issuance import InFlight
from acme_ca.authority.limits import RateLimits
from acme_ca.authority.nonces import NonceService
from acme_ca.authority.ocsp import OcspResponder
from acme_ca.authority.ocsp_responders import ResponderCertificates, responder_validity
from acme_ca.authority.orders import OrderService
from acme_ca.authority.profiles import Catalog
from acme_ca.authority.published_crls import PublishedCrls
from acme_ca.authority.readiness import Readiness
from acme_ca.authority.renewal_info import RenewalInfo
from acme_ca.authority.retention import RETENTION_EVERY, Retention
from acme_ca.authority.revocation import RevocationService
from acme_ca.authority.settings import Settings
from acme_ca.authority.supervisor import ValidationSupervisor
from acme_ca.authority.sweeper import IssuanceSweeper
from acme_ca.clock import Clock
from acme_ca.config import Config, ValidationConfig, parse_host_port
from acme_ca.domain.problems import AcmeProblem
from acme_ca.pki import files
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.publication import Publication
from acme_ca.store.base import Store
from acme_ca.validation.base import Validator
from acme_ca.validation.caa import CaaChecker
from acme_ca.validation.dns import DnsClient
from acme_ca.validation.dns01 import Dns01Validator
from acme_ca.validation.http01 import Http01Validator
from acme_ca.validation.network import AddressPolicy, OwnEndpoints
from acme_ca.validation.resolver import Resolver
from acme_ca.validation.tlsalpn01 import TlsAlpn01Validator

log = logging.getLogger(__name__)

SUPERVISOR = web.AppKey("supervisor", ValidationSupervisor)
SWEEPER = web.AppKey("sweeper", IssuanceSweeper)
BACKGROUND = web.AppKey("background", BackgroundWork)


def validation_resolver(settings: ValidationConfig) -> Resolver:
    """How validation turns names into addresses ([validation] hosts, resolvers)."""
    return Resolver(settings.hosts, settings.resolvers, settings.timeout.total_seconds(),
                    zone_resolvers=settings.zone_resolvers)


def own_ports(config: Config) -> frozenset[int]:
    """The ports the CA answers on: [server] listen's, and external_url's (a reverse
    proxy in front of the CA: 443 when the URL names no port)."""
    external = config.server.external_port
    return frozenset({config.server.listen_port} | ({external} if external else set()))


async def own_endpoints(config: Config) -> OwnEndpoints:
    """``own_ports``, and the addresses external_url's host resolves to now (at start),
    through validation's own resolver: a proxy on another host is the CA too. A name
    that does not resolve adds no address; a warning says so."""
    own = OwnEndpoints(own_ports(config))
    host = config.server.external_host
    if host is None:
        return own
    try:
        addresses = await validation_resolver(config.validation).resolve(host)
    except AcmeProblem as problem:
        log.warning("[server] external_url: %s; validation refuses its port on this host "
                    "only", problem.detail)
        return own
    return OwnEndpoints(own.ports, frozenset(addresses))


def default_validators(config: Config, own: OwnEndpoints | None = None) -> dict[str, Validator]:
    """One validator per challenge type, all sharing the resolver, policy and deadline.

    Every validator that connects somewhere takes ``policy`` (the [validation]
    allowed_networks guard, and ``own``: where the CA answers, which validation never
    connects to; without it, ``own_ports`` on this host) and ``timeout``. ``serve``
    passes ``own_endpoints``, resolved at start.
    """
    settings = config.validation
    timeout = settings.timeout.total_seconds()
    resolver = validation_resolver(settings)
    own = own or OwnEndpoints(own_ports(config))
    policy = AddressPolicy(settings.allowed_networks, own=own)
    return {
        "http-01": Http01Validator(
            resolver, policy=policy, port=settings.http01_port, total_timeout=timeout
        ),
        "dns-01": Dns01Validator(DnsClient.from_config(settings)),
        "tls-alpn-01": TlsAlpn01Validator(
            resolver, policy=policy, port=settings.tlsalpn01_port, timeout=timeout
        ),
    }


def caa_checker(config: Config) -> CaaChecker | None:
    """CAA is checked only when [validation] caa_identities names this CA."""
    if not config.validation.caa_identities:
        return None
    return CaaChecker(DnsClient.from_config(config.validation), config.validation.caa_identities)


def publication(config: Config) -> Publication:
    """Where every leaf says its CRL, issuer certificate and OCSP responder are
    ([revocation] base_url, ocsp): ``Issuer.load`` takes it in serve and sign-csr."""
    return Publication(config.revocation.base_url, config.revocation.ocsp)


def build_publication_app(
    store: Store, issuer: Callable[[], Issuer], clock: Clock,
    ocsp: OcspResponder | None = None,
) -> web.Application:
    """The plain-HTTP listener's application ([revocation] http_listen): CRLs, the
    intermediates' certificates, and the OCSP responder if given (``build_ocsp``)."""
    return create_publication_app(PublishedCrls(store, issuer, clock), clock, ocsp)


def build_app(
    config: Config,
    store: Store,
    issuer: Callable[[], Issuer],
    clock: Clock,
    validators: Mapping[str, Validator] | None = None,
    own: OwnEndpoints | None = None,
    settings: Settings | None = None,
) -> web.Application:
    """The application; ``own`` (from ``own_endpoints``) goes to ``default_validators``.

    ``settings`` (``serve``'s, which a SIGHUP swaps: ``cli/reload.py``) holds
    ``config``; what follows a setting that may change at run time is derived from it
    (``authority/settings.py``): the request services, the validation settings, the
    CRL publisher and the retention job. Links, nonces, the issuances in flight and
    the supervisor's limits are built once."""
    settings = settings if settings is not None else Settings(config)
    config = settings.current
    links = Links(config.server.base_url)
    nonces = NonceService(store, clock)
    in_flight = InFlight()  # the orders' issuances, which the sweeper leaves alone

    def validation(c: Config) -> dict[str, Any]:
        """The supervisor's settings (``ValidationSupervisor.configure``)."""
        return {
            "validators": validators if validators is not None else default_validators(c, own),
            "valid_authorization_lifetime": c.policy.valid_authorization_lifetime,
            "timeout": c.validation.timeout.total_seconds(),
            "caa": caa_checker(c),
            "limits": RateLimits(store, clock, c.limits),  # [limits], shared through the store
        }

    supervisor_settings = settings.derive(validation)
    supervisor = ValidationSupervisor(
        store, clock, max_in_flight=config.validation.max_in_flight,
        max_in_flight_per_account=config.validation.max_in_flight_per_account,
        account_uri=links.account, **supervisor_settings(),
    )
    settings.on_swap(lambda _: supervisor.configure(**supervisor_settings()))

    auditor = Auditor(store, clock)  # who acts: the request's Origin (api/middleware)

    def request_services(c: Config) -> Services:
        """What the handlers call, built from the settings ``c``."""
        limits = RateLimits(store, clock, c.limits)
        caa = caa_checker(c)
        recheck = None if caa is None else CaaRecheck(
            caa, links.account, timeout=c.validation.timeout.total_seconds()
        )
        profiles = Catalog.from_config(c)
        renewal_info = RenewalInfo(store, clock, c.revocation.renewal_info_retry_after)
        return Services(
            accounts=AccountService(store, clock, terms_of_service=c.acme.terms_of_service,
                                    blocked_keys=c.policy.blocked_keys,
                                    eab_required=c.acme.eab_required, limits=limits,
                                    auditor=auditor),
            orders=OrderService(store, clock, c.policy, issuer, supervisor.challenge_types,
                                caa_recheck=recheck, in_flight=in_flight, profiles=profiles,
                                limits=limits, renewal_info=renewal_info, auditor=auditor),
            authorizations=AuthorizationService(store, clock, supervisor, limits),
            revocation=RevocationService(store, clock, auditor),
            renewal_info=renewal_info,
            nonces=nonces,
            links=links,
            ca=CaCertificates(issuer),
            meta=c.acme,
            caa_identities=c.validation.caa_identities,
            profiles=profiles.offered(),
        )

    services = settings.derive(request_services)
    crls = settings.derive(lambda c: CrlPublisher(
        store, clock, issuer, publication(c), c.revocation.crl_lifetime,
        backdate=c.policy.backdate))
    retention = settings.derive(lambda c: Retention(store, clock, c.retention.grace))
    app = create_app(services)
    mount_health(app, Readiness(store, issuer, clock))
    app[SUPERVISOR] = supervisor
    app[SWEEPER] = sweeper = IssuanceSweeper(store, clock, in_flight=in_flight)
    app[BACKGROUND] = background = BackgroundWork(store, [
        Job("ending issuances left processing", sweeper.sweep),
        Job("resuming validations left processing", supervisor.resume_stopped),
        Job("purging expired nonces", nonces.purge_expired),
        Job("expiring orders and authorizations", Expiry(store, clock).expire,
            every=EXPIRY_EVERY),
        Job("pruning what expired past the retention grace", lambda: retention().prune(),
            every=RETENTION_EVERY),
        Job("publishing CRLs", lambda: crls().publish()),
    ])

    async def run_background(_: web.Application) -> AsyncIterator[None]:
        """The cluster's background work, in the process holding its lease (a first try
        before the first request); at shutdown, the validations and issuances in flight
        finish (at most ``[server] shutdown_timeout``: ``finish_in_flight``, which
        ``serve`` calls earlier, once no new connection is accepted) before the lease is
        given up and the store closes."""
        await background.start()
        yield
        try:
            await finish_in_flight(app, settings.current.server.shutdown_timeout.total_seconds())
        finally:
            await background.close()

    app.cleanup_ctx.append(run_background)
    return app


async def finish_in_flight(app: web.Application, timeout: float) -> None:
    """Shutdown (issue 13 item 7): the supervisor takes no new validation; those in
    flight, and the issuances in flight, finish within ``timeout`` seconds in all. What
    still runs then is cancelled and left as it is, processing, for the next start (or
    another replica) to take up: the holder of the background lease resumes the
    validations (``ValidationSupervisor.resume_stopped``, once they are older than a
    validation lasts) and ends the orders (``IssuanceSweeper``). Calling it again
    finds nothing in flight and returns at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await app[SUPERVISOR].close(grace=timeout)
    await app[SERVICES]().orders.drain(max(0.0, deadline - loop.time()))


def build_ocsp(
    config: Config, store: Store, issuer: Callable[[], Issuer], clock: Clock
) -> OcspResponder | None:
    """The OCSP responder when ``[revocation] ocsp = true``, else None: answers for the
    intermediates that sign now (``Issuer.crl_signers``: the current one and the
    archived ones whose key is still kept), with this host's responder certificates
    in <data_dir>/ocsp (``serve`` starts, renews or follows them)."""
    if not config.revocation.ocsp:
        return None
    lifetime = config.revocation.ocsp_lifetime
    certificates = ResponderCertificates(
        store=store, signers=lambda: issuer().crl_signers(),
        directory=config.server.data_dir / "ocsp", clock=clock,
        validity=responder_validity(lifetime), backdate=config.policy.backdate,
    )
    return OcspResponder(store, certificates, clock, lifetime, backdate=config.policy.backdate)


def build_admin_app(store: Store, issuer: Callable[[], Issuer], clock: Clock,
                    data_dir: Path) -> web.Application:
    """The admin listener's application ([admin] listen): the guard, /metrics, what
    ``create_admin_app`` mounts, /healthz and /readyz (as on the ACME listener), and the
    dashboard (its forms' key in ``data_dir``)."""
    app = create_admin_app(AdminCertificates(store, clock, issuer), CaCertificates(issuer))
    mount_health(app, Readiness(store, issuer, clock))
    dashboard = Dashboard(store, clock, RevocationService(store, clock))
    add_dashboard_routes(app, dashboard, form_key(data_dir))
    return app


def admin_tls_context(issuer: Issuer) -> ssl.SSLContext:
    """The admin listener's TLS: a client certificate required, verified against this
    CA alone (``admin_issuers_pem``; never the system's CAs); the server's own
    certificate is loaded into it by ``ServerTls.share``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                         cadata=admin_issuers_pem(issuer))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def admin_issuers_pem(issuer: Issuer) -> str:
    """What signs admin certificates, as the admin listener trusts it: the root, the
    current intermediate and the archived ones (a certificate they signed stays good
    until it expires or is revoked). After a reload, loading it again adds the new."""
    archived = [chain[0] for chain in issuer.earlier.values()]
    return files.pem(issuer.root, issuer.certificate, *archived).decode("ascii")


def admin_url(config: Config) -> str:
    """The admin listener's URL: its address when the server's TLS certificate (which it
    presents) names it, else the first name that certificate carries, with its port."""
    assert config.admin.listen is not None
    host, port = parse_host_port(config.admin.listen)
    dns, ips = config.server.own_names
    names = [*dns, *map(str, ips)]
    shown = host if host in names else names[0]
    return f"https://{f'[{shown}]' if ':' in shown else shown}:{port}"
