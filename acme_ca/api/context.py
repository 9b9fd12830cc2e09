"""What the front end's handlers reach: the services of the moment, under one aiohttp AppKey."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from acme_ca.api.links import Links
from acme_ca.authority.accounts import AccountService
from acme_ca.authority.authorizations import AuthorizationService
from acme_ca.authority.ca_certificates import CaCertificates
from acme_ca.authority.nonces import NonceService
from acme_ca.authority.orders import OrderService
from acme_ca.authority.renewal_info import RenewalInfo
from acme_ca.authority.revocation import RevocationService
from acme_ca.config import AcmeConfig


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the front end calls: the authority's use cases, links, the issuer."""

    accounts: AccountService
    orders: OrderService
    authorizations: AuthorizationService
    revocation: RevocationService
    renewal_info: RenewalInfo  # ARI (RFC 9773)
    nonces: NonceService
    links: Links
    ca: CaCertificates  # the CA's public certificates (they change on reload)
    meta: AcmeConfig
    caa_identities: tuple[str, ...] = ()
    profiles: Mapping[str, str] = field(default_factory=dict)  # meta.profiles: name -> description


# The services of the moment: a reload (``authority/settings.py``) swaps them whole, so
# a request reads them once (``services_of``) and uses those to its end.
SERVICES = web.AppKey("services", Callable[[], Services])
_OF_REQUEST = web.RequestKey("services", Services)


def services_of(request: web.Request) -> Services:
    """The services this request uses: those of the moment of its first call."""
    if _OF_REQUEST not in request:
        request[_OF_REQUEST] = request.app[SERVICES]()
    return request[_OF_REQUEST]
