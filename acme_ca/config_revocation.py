"""The configuration of what relying parties and ACME clients learn of revocation and
renewal: the ``[revocation]`` table.

    [revocation]
    http_listen = "127.0.0.1:8556"    # the plain-HTTP listener of CRLs and OCSP
    base_url = "http://ca.bluerobin.local:8556"   # what the leaves carry (CDP, AIA); no path
    ocsp = false                      # the OCSP responder (RFC 6960), and its URL in the AIA
    crl_lifetime = "24h"              # nextUpdate - thisUpdate of a CRL, 1h to 30d
    ocsp_lifetime = "24h"             # nextUpdate - thisUpdate of an OCSP response, 1h to 7d
    renewal_info_retry_after = "6h"   # ARI Retry-After (RFC 9773 4.3), 1m to 7d

``config.py`` reads the table through ``SCHEMA`` and ``read_revocation``; a wrong value
raises ``ConfigError`` naming the key, like every other value. Relying parties fetch
CRLs and ask OCSP over plain http (RFC 5280 4.2.1.13, RFC 6960 A.1), so the listener
is a second one, never the ACME (HTTPS) listener's address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from acme_ca import config_values as values
from acme_ca.config_values import format_duration, parse_host_port
from acme_ca.errors import ConfigError

if TYPE_CHECKING:
    from acme_ca.config import ServerConfig

DEFAULT_HTTP_LISTEN = "127.0.0.1:8556"

# key: (what is expected, the converter), as config._SCHEMA holds every other table's
SCHEMA: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "http_listen": ("'host:port', e.g. '127.0.0.1:8556'", values.listen),
    "base_url": ("an http:// URL with no path, e.g. 'http://ca.example:8556'",
                 values.http_url),
    "ocsp": ("true or false", values.boolean),
    "crl_lifetime": ("a duration from 1h to 30d, such as '24h'", values.duration),
    "ocsp_lifetime": ("a duration from 1h to 7d, such as '24h'", values.duration),
    "renewal_info_retry_after": ("a duration from 1m to 7d, such as '6h'", values.duration),
}

BOUNDS = {"crl_lifetime": (timedelta(hours=1), timedelta(days=30)),
          "ocsp_lifetime": (timedelta(hours=1), timedelta(days=7)),
          "renewal_info_retry_after": (timedelta(minutes=1), timedelta(days=7))}


@dataclass(frozen=True, slots=True)
class RevocationConfig:
    """What relying parties fetch over plain HTTP: CRLs (RFC 5280), OCSP (RFC 6960), the
    issuing CA's certificate; and how often ACME clients ask for renewal information."""

    http_listen: str = DEFAULT_HTTP_LISTEN  # the plain-HTTP listener of CRLs and OCSP
    base_url: str = ""  # what goes into the leaves; load_config fills in the default
    ocsp: bool = False  # the OCSP responder, and its URL in the leaves' AIA
    crl_lifetime: timedelta = timedelta(hours=24)  # nextUpdate - thisUpdate of a CRL
    ocsp_lifetime: timedelta = timedelta(hours=24)  # nextUpdate - thisUpdate of a response
    renewal_info_retry_after: timedelta = timedelta(hours=6)  # ARI Retry-After, jittered

    @property
    def listen_host(self) -> str:
        return parse_host_port(self.http_listen)[0]

    @property
    def listen_port(self) -> int:
        return parse_host_port(self.http_listen)[1]


def default_publication_url(server: ServerConfig, http_listen: str) -> str:
    """``[revocation] base_url`` when the file sets none: http://, the host of the
    server's own base URL (``[server] hostname`` when it can be named, else the
    address the Quick start serves on), and the port of ``http_listen``."""
    host = urlsplit(server.base_url).hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{parse_host_port(http_listen)[1]}"


def read_revocation(get: Callable[[str, Any], Any], server: ServerConfig) -> RevocationConfig:
    """The ``[revocation]`` settings: ``get(dotted key, default)`` reads one value (checked
    against ``SCHEMA``); then the lifetimes' bounds, and a listener of its own."""
    d = RevocationConfig()
    http_listen = get("revocation.http_listen", d.http_listen)
    settings = RevocationConfig(
        http_listen=http_listen,
        base_url=get("revocation.base_url", None)
        or default_publication_url(server, http_listen),
        ocsp=get("revocation.ocsp", d.ocsp),
        crl_lifetime=get("revocation.crl_lifetime", d.crl_lifetime),
        ocsp_lifetime=get("revocation.ocsp_lifetime", d.ocsp_lifetime),
        renewal_info_retry_after=get("revocation.renewal_info_retry_after",
                                     d.renewal_info_retry_after),
    )
    for key, (low, high) in BOUNDS.items():
        value = getattr(settings, key)
        if not low <= value <= high:
            raise ConfigError(f"revocation.{key}: {format_duration(value)} is outside "
                              f"{format_duration(low)} to {format_duration(high)}")
    anywhere = {"0.0.0.0", "::"}  # noqa: S104 (compared, not bound)
    hosts = {settings.listen_host, server.listen_host}
    if settings.listen_port == server.listen_port and (len(hosts) == 1 or hosts & anywhere):
        raise ConfigError(f"revocation.http_listen ({http_listen}) is the ACME listener's "
                          f"address ([server] listen {server.listen}): give it its own port")
    return settings
