"""Where validation may connect: the guard that keeps it from becoming an open proxy.

A validator resolves a name itself, checks every address here, and then connects to
that very address (never resolving again), so neither a redirect nor a DNS answer
that changes between lookups (rebinding) can lead it elsewhere.

Three rules, in this order:

1. ``DENIED`` wins whatever the configuration says: link-local (cloud metadata at
   169.254.169.254, reached over IPv6 as fd00:ec2::254), the other metadata and
   platform addresses clouds hand out, unspecified (0.0.0.0 reaches the local host),
   multicast and broadcast. An IPv6 address that carries an IPv4 one (IPv4-mapped
   ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4, Teredo) is refused when the
   IPv4 address it carries is.
2. A port the CA itself listens on (``OwnEndpoints``: [server] listen's port, and
   external_url's port, where a reverse proxy serves the CA; passed in by the cli
   wiring) is never connected to on any address of this host (loopback, and every
   address the host can bind) nor on the addresses external_url's host resolved to
   at start (the proxy may run elsewhere). Not for a redirect, and not for the first
   request either: no challenge is answered by the CA's own listener, and a GET to it
   could only probe the CA. A port is judged per connection, so the same address on
   another port (a client's web server beside the CA) is still validated.
3. Otherwise the address must be inside ``allowed`` ([validation] allowed_networks;
   by default the private ranges, and loopback when the server listens on loopback
   without a reverse proxy, as in the Quick start; see
   ``config_networks.default_allowed_networks``). An IPv4-mapped address is judged as the IPv4
   address it reaches.

A name that resolves to allowed and refused addresses is validated through the
allowed ones only, as Boulder's ``bdns.LookupHost`` drops reserved addresses before
the VA picks one: no connection to a refused address is ever attempted, so nothing
is lost by going on. Only when no address is left does validation fail, with the
problem of the first refused address (see ``AddressPolicy.allowed_addresses``).

``AddressPolicy.refused`` says why in words that name no address, for a problem about
an address the client did not choose: a redirect's target, or what a name resolved to
(through a CNAME, any internal name's address). Validation never repeats what a target
or DNS sent (see http01, dns); the validators' records keep the addresses for the
operator.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from acme_ca.config_networks import DEFAULT_ALLOWED_NETWORKS
from acme_ca.domain.problems import AcmeProblem, ProblemType

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LINK_LOCAL = "link-local (where cloud metadata services live)"

# Refused whatever [validation] allowed_networks says: (network, why), most specific first.
DENIED: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(network), why)
    for network, why in (
        ("fd00:ec2::254/128", "a cloud metadata address (AWS instance metadata over IPv6)"),
        ("100.100.100.200/32", "a cloud metadata address (Alibaba Cloud)"),
        ("192.0.0.192/32", "a cloud metadata address (Oracle Cloud)"),
        ("168.63.129.16/32", "a cloud platform address (Azure WireServer)"),
        ("169.254.0.0/16", _LINK_LOCAL),
        ("fe80::/10", "link-local"),
        ("0.0.0.0/8", "unspecified ('this network': 0.0.0.0 reaches the local host)"),
        ("::/128", "unspecified (:: reaches the local host)"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
        ("255.255.255.255/32", "broadcast"),
    )
)
ALWAYS_DENIED: tuple[Network, ...] = tuple(network for network, _ in DENIED)

_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


@dataclass(frozen=True, slots=True)
class OwnEndpoints:
    """Where this CA answers: ``ports`` ([server] listen's, and external_url's: the
    reverse proxy in front of it) on every address of this host and on ``addresses``
    (what external_url's host resolved to at start); ``covers`` says whether a
    connection to (address, port) would reach the CA itself.

    Every address of this host counts, not only the one in [server] listen: a server
    bound to 0.0.0.0 answers on all of them, and refusing the CA's port on an address
    it happens not to be bound to costs nothing (no challenge is answered there); the
    same holds for the proxy's host.
    """

    ports: frozenset[int] = frozenset()
    addresses: frozenset[Address] = frozenset()

    def covers(self, address: Address, port: int) -> bool:
        if port not in self.ports:
            return False
        target = _embedded_ipv4(address) or address
        if address in self.addresses or target in self.addresses:
            return True
        return target.is_loopback or target.is_unspecified or is_local_address(target)


def is_local_address(address: Address) -> bool:
    """Is ``address`` one of this host's own? Tried by binding a socket to it (port 0,
    closed at once): the kernel accepts only its own addresses, without a packet sent."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((str(address), 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The allowed networks and the CA's own endpoints; ``AddressPolicy()`` is the
    configuration's default for the default listen address (no own port known)."""

    allowed: Sequence[Network] = DEFAULT_ALLOWED_NETWORKS
    own: OwnEndpoints = field(default_factory=OwnEndpoints)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", tuple(self.allowed))  # a list stays unshared

    def refused(self, address: Address, port: int | None = None) -> str | None:
        """Why validation may not connect to ``address`` (on ``port``), naming no
        address ("is outside [validation] allowed_networks"), or None."""
        if denied_reason(address) is not None:
            return (
                "is always refused (link-local, cloud metadata, unspecified, multicast "
                "or broadcast)"
            )
        if port is not None and self.own.covers(address, port):
            return "is this CA's own listening address and port"
        target = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        target = target or address
        if not any(target.version == n.version and target in n for n in self.allowed):
            return "is outside [validation] allowed_networks"
        return None

    def problem(self, address: Address, name: str, port: int | None = None) -> AcmeProblem | None:
        """None if validation may connect to `address` (which `name` resolved to). The
        problem names the address only when `name` is that address (an IP identifier)."""
        reason = self.refused(address, port)
        if reason is None:
            return None
        if ip_literal(name) == address:
            subject = f"{address} {denied_reason(address) or reason}"
        else:
            subject = f"{name} resolves to an address that {reason}"
        return AcmeProblem(ProblemType.CONNECTION, f"{subject}: validation never connects there")

    def allowed_addresses(
        self, addresses: Sequence[Address], name: str, port: int | None = None
    ) -> tuple[list[Address], AcmeProblem | None]:
        """The addresses validation may use (in order), and the first refused one's problem."""
        allowed: list[Address] = []
        first: AcmeProblem | None = None
        for address in addresses:
            problem = self.problem(address, name, port)
            if problem is None:
                allowed.append(address)
            elif first is None:
                first = problem
        return allowed, first


def denied_reason(address: Address) -> str | None:
    """Why `address` is never a validation target ("is link-local ..."), or None."""
    for network, why in DENIED:
        if address.version == network.version and address in network:
            return f"is {why}"
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        for network, why in DENIED:
            if embedded.version == network.version and embedded in network:
                return f"carries {embedded}, {why}"
    return None


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches (mapped, NAT64, 6to4, Teredo), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in prefix for prefix in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): the client is where packets go
    return None


# --- what validators that connect share -------------------------------------------------

_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.ETIMEDOUT: "timed out",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EPIPE: "connection closed",
}


def connection_reason(exc: OSError) -> str:
    """A connection failure in a few words: "connection refused", "timed out", ..."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    if isinstance(exc, ConnectionError):
        return "the connection was closed"
    return exc.strerror.lower() if exc.strerror else str(exc) or type(exc).__name__


def candidates(addresses: Sequence[Address]) -> list[Address]:
    """The first address, then the first of the other family as a fallback."""
    if not addresses:
        return []
    first = addresses[0]
    other = next((a for a in addresses if a.version != first.version), None)
    return [first] if other is None else [first, other]


def host_port(host: object, port: int) -> str:
    """'10.0.0.1:80', '[::1]:443', 'ns.example:53'."""
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def ip_literal(text: str) -> Address | None:
    """The address `text` is written as (an IP identifier, a URL host: brackets around
    IPv6 allowed), or None for a host name: the one test of "is this an IP literal"."""
    try:
        return ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
