"""The configuration of how operators reach and watch the CA: the ``[admin]`` table.

    [admin]
    listen = "127.0.0.1:8557"   # the admin listener (HTTPS, admin client certificates
                                # only): /metrics, /healthz, /readyz, the dashboard

Off by default (no ``listen``). ``config.py`` reads the table through ``SCHEMA`` and
``read_admin``; a wrong value raises ``ConfigError`` naming the key. ``[server]
log_format`` and ``shutdown_timeout`` are in ``config.py`` with the rest of [server].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acme_ca import config_values as values
from acme_ca.config_values import parse_host_port
from acme_ca.errors import ConfigError

if TYPE_CHECKING:
    from acme_ca.config import ServerConfig
    from acme_ca.config_revocation import RevocationConfig

SCHEMA: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "listen": ("'host:port', e.g. '127.0.0.1:8557'", values.listen),
}


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The admin listener: HTTPS that asks every client for a certificate of this CA's
    ``admin`` profile (``acme-ca admin-cert``). None: no admin listener."""

    listen: str | None = None

    @property
    def listen_port(self) -> int | None:
        return None if self.listen is None else parse_host_port(self.listen)[1]


def read_admin(get: Callable[[str, Any], Any], server: ServerConfig,
               revocation: RevocationConfig) -> AdminConfig:
    """The ``[admin]`` settings: ``get(dotted key, default)`` reads one value; the
    listener must have a port of its own."""
    settings = AdminConfig(listen=get("admin.listen", None))
    if settings.listen is None:
        return settings
    host, port = parse_host_port(settings.listen)
    anywhere = {"0.0.0.0", "::"}  # noqa: S104 (compared, not bound)
    for name, other in (("[server] listen", server.listen),
                        ("[revocation] http_listen", revocation.http_listen)):
        other_host, other_port = parse_host_port(other)
        hosts = {host, other_host}
        if port == other_port and (len(hosts) == 1 or hosts & anywhere):
            raise ConfigError(f"admin.listen ({settings.listen}) is the address of {name} "
                              f"({other}): give it its own port")
    return settings
