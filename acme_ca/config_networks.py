"""Where validation may connect by default ([validation] allowed_networks unset): the
private ranges, plus loopback only for a CA that itself listens on loopback with no
reverse proxy in front (the Quick start). ``config.py`` reads the setting; this module
holds the defaults and the rule that picks one.
"""

from __future__ import annotations

import ipaddress

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_or_none(host: str) -> IpAddress | None:
    """``host`` as an IP address, or None when it is a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None

# Where validation may connect: the private ranges (an internal CA validates internal
# names), and loopback only when the server itself listens on loopback and no reverse
# proxy serves it (the Quick start): a CA that serves the network must not let
# validation reach the services of its own host. Link-local (cloud metadata) is denied
# whatever [validation] says.
PRIVATE_NETWORKS: tuple[IpNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
LOOPBACK_NETWORKS: tuple[IpNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
# The default for the default [server] listen (127.0.0.1:8555).
DEFAULT_ALLOWED_NETWORKS: tuple[IpNetwork, ...] = PRIVATE_NETWORKS + LOOPBACK_NETWORKS


def default_allowed_networks(
    listen_host: str, external_url: str | None = None
) -> tuple[IpNetwork, ...]:
    """[validation] allowed_networks when the file does not set it: loopback is in only
    when ``listen_host`` ([server] listen) is a loopback address or "localhost" and no
    ``external_url`` is set. With one, the server listens on loopback because a reverse
    proxy on this host serves it to the network: loopback then leads to that proxy (and
    through it to the CA) and to every other service of the host, like any address of
    a server on the network."""
    if external_url:
        return PRIVATE_NETWORKS
    if listen_host.lower().rstrip(".") == "localhost":
        return DEFAULT_ALLOWED_NETWORKS
    address = ip_or_none(listen_host)  # a host name is not known to be loopback: refused
    loopback = address is not None and address.is_loopback
    return DEFAULT_ALLOWED_NETWORKS if loopback else PRIVATE_NETWORKS
