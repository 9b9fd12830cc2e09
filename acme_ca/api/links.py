"""Every resource URL, built in one place from the configured base URL.

The base comes from ``[server] external_url`` (or ``https://hostname:port``), never
from the request's Host header. Routes are served at the root: when a reverse proxy
publishes the CA under a path prefix (``https://proxy.example/acme-ca``), the proxy
strips that prefix before forwarding, and ``Links`` simply prepends the full base.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import quote, unquote, urlsplit

# Route name -> aiohttp path pattern; the router and Links share this one table.
ROUTES: Mapping[str, str] = MappingProxyType(
    {
        "directory": "/directory",
        "new_nonce": "/acme/new-nonce",
        "new_account": "/acme/new-account",
        "new_order": "/acme/new-order",
        "revoke_cert": "/acme/revoke-cert",
        "key_change": "/acme/key-change",
        "account": "/acme/acct/{id}",
        "account_orders": "/acme/acct/{id}/orders",
        "order": "/acme/order/{id}",
        "finalize": "/acme/order/{id}/finalize",
        "authorization": "/acme/authz/{id}",
        "challenge": "/acme/chall/{id}",
        "certificate": "/acme/cert/{serial}",
        "certificate_alternate": "/acme/cert/{serial}/{n}",
        "renewal_info": "/acme/renewal-info/{cert_id}",
        "root": "/roots/root.pem",
        "chain": "/roots/chain.pem",
    }
)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote(safe="") leaves as it is


def _quoted(value: str) -> str:
    """``value`` percent-encoded as one path segment; the ids this CA makes need none."""
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


class Links:
    """Full URLs of this CA's resources, e.g. ``Links("https://ca.example:8555")``."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base URL {base_url!r} must be http(s)://host[:port][/prefix]")
        if parts.query or parts.fragment or "?" in base_url or "#" in base_url:
            raise ValueError(f"base URL {base_url!r} must not have a query or fragment")
        self.base = base_url.rstrip("/")
        # the base's own braces (a path may hold them) are text, not template fields
        literal = self.base.replace("{", "{{").replace("}", "}}")
        self._templates = {name: literal + path for name, path in ROUTES.items()}
        # RFC 8555 7.1: the Link every ACME response carries to the directory
        self.index_link = f'<{self.directory()}>;rel="index"'

    def __repr__(self) -> str:
        return f"Links({self.base!r})"

    def _url(self, route: str, **ids: str) -> str:
        return self._templates[route].format_map({k: _quoted(v) for k, v in ids.items()})

    def directory(self) -> str:
        return self._url("directory")

    def new_nonce(self) -> str:
        return self._url("new_nonce")

    def new_account(self) -> str:
        return self._url("new_account")

    def new_order(self) -> str:
        return self._url("new_order")

    def revoke_cert(self) -> str:
        return self._url("revoke_cert")

    def key_change(self) -> str:
        return self._url("key_change")

    def account(self, account_id: str) -> str:
        return self._url("account", id=account_id)

    def account_orders(self, account_id: str) -> str:
        return self._url("account_orders", id=account_id)

    def order(self, order_id: str) -> str:
        return self._url("order", id=order_id)

    def finalize(self, order_id: str) -> str:
        return self._url("finalize", id=order_id)

    def authorization(self, authorization_id: str) -> str:
        return self._url("authorization", id=authorization_id)

    def challenge(self, challenge_id: str) -> str:
        return self._url("challenge", id=challenge_id)

    def certificate(self, serial: str, alternate: int = 0) -> str:
        """The default chain, or alternate chain `alternate` (RFC 8555 7.4.2)."""
        if alternate:
            return self.certificate_alternate(serial, str(alternate))
        return self._url("certificate", serial=serial)

    def certificate_alternate(self, serial: str, n: str) -> str:
        return self._url("certificate_alternate", serial=serial, n=n)

    def renewal_info(self, cert_id: str | None = None) -> str:
        """The renewal information of one certificate (RFC 9773 4.1); without a CertID,
        the directory's renewalInfo: the base a client appends "/" and a CertID to."""
        if cert_id is None:
            return self.base + ROUTES["renewal_info"].split("/{", 1)[0]
        return self._url("renewal_info", cert_id=cert_id)

    def root(self) -> str:
        return self._url("root")

    def chain(self) -> str:
        return self._url("chain")

    def request_url(self, path_qs: str) -> str:
        """The URL a request was sent to, which its JWS "url" must equal (RFC 8555 6.4).

        ``path_qs`` is the request's raw path and query as received (aiohttp's
        ``request.raw_path``), so a client signing exactly what it fetched matches.
        """
        return self.base + path_qs

    def account_id_from_kid(self, kid: str) -> str | None:
        """The account id if ``kid`` is exactly one of this CA's account URLs, else None.

        What follows the prefix is ASCII in every URL :meth:`account` builds (it quotes
        the id), so anything else, lone surrogates included, is None, never an error."""
        prefix = self.base + ROUTES["account"].split("{", 1)[0]
        if not kid.startswith(prefix) or not kid[len(prefix) :].isascii():
            return None
        account_id = unquote(kid[len(prefix) :])
        if not account_id or self.account(account_id) != kid:
            return None
        return account_id
