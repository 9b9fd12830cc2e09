"""A small DNS client for dns-01 and CAA: one name, one type, CNAMEs followed.

Which servers are asked depends on the name (ACME-NOTES 2 #11, per-zone resolvers):
the longest matching suffix in ``[validation] zone_resolvers``, else
``[validation] resolvers``, else the system's resolvers (``/etc/resolv.conf``, read by
dnspython). The choice is made again for every name of a CNAME chain, so a challenge
delegated to another zone (acme-dns, ACME-NOTES 2 #12) is asked where that zone lives.

Every query carries EDNS0 with a 1232-byte UDP payload (the DNS flag day 2020 value)
and is retried over TCP when the UDP answer comes back truncated (large TXT sets,
pebble b29f2f5). The UDP exchange (``udp_exchange``) is dnspython's
``asyncquery.udp_with_fallback`` with ``ignore_unexpected`` done on the event loop's
socket calls (``sock_sendto``, ``sock_recvfrom``) instead of an asyncio datagram
transport made for each query: a fresh socket (a random source port) per query, a
datagram from another address ignored, the first one from the server parsed by
dnspython and checked as the response to the query; it costs about 15% less CPU per
lookup (docs/performance.md). The servers of the chosen set are tried in order until one answers
NOERROR or NXDOMAIN; one that answers another rcode (SERVFAIL, REFUSED) is dropped,
one that stays silent is tried again, all within ``timeout`` seconds per name.

CNAMEs are followed whether the server put the whole chain in one answer (a recursive
resolver) or only the first CNAME (an authoritative server): at most 8 hops, a name
seen twice is a loop. NXDOMAIN is an answer (``DnsAnswer.nxdomain``), not an error:
CAA treats it as an empty set. Everything else that keeps a name from being looked up
raises ``AcmeProblem`` of type ``dns`` whose detail names the name and the servers.

A problem names only the name it was asked about, and how many CNAMEs were followed
("_acme-challenge.web.example (after 2 CNAMEs)"), never a CNAME target: the client
chooses the first CNAME, but the names after it are DNS data the client may not
read, internal zones included (RFC 8555 10.2). ``DnsAnswer.record`` keeps the chain
for the operator's logs.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dns.asyncquery
import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.resolver

from acme_ca.config import ValidationConfig, parse_host_port
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.network import host_port

EDNS_PAYLOAD = 1232
MAX_CNAME_HOPS = 8
Server = tuple[str, int]
_NO_ANSWER = "did not answer"


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """The records of one type at a name, after following CNAMEs.

    ``chain`` is the name asked followed by every CNAME target, so ``chain[-1]`` is
    the name the records (or the NXDOMAIN) belong to; ``servers`` names the server
    ("ip:port") that answered each query sent, in order.
    """

    name: str
    rdtype: str
    chain: tuple[str, ...]
    servers: tuple[str, ...]
    rdatas: tuple[dns.rdata.Rdata, ...] = ()
    nxdomain: bool = False

    @property
    def canonical_name(self) -> str:
        return self.chain[-1]

    @property
    def server(self) -> str:
        """The server that gave the final answer."""
        return self.servers[-1]

    @property
    def where(self) -> str:
        """The name the answer is about, for problem details: the name asked, never a
        CNAME target (see the module)."""
        return after_cnames(self.name, len(self.chain) - 1)

    def record(self) -> dict[str, Any]:
        """What a ValidationResult keeps of this lookup."""
        return {
            "name": self.name,
            "type": self.rdtype,
            "cname_chain": list(self.chain[1:]),
            "resolvers": list(self.servers),
            "resolver": self.server,
            "rcode": "NXDOMAIN" if self.nxdomain else "NOERROR",
            "values": [rdata.to_text() for rdata in self.rdatas],
        }


class DnsLookup(Protocol):
    """What the dns-01 validator and the CAA checker need from DNS."""

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        """The records of ``rdtype`` at ``name``, CNAMEs followed; AcmeProblem(dns) on failure."""


class DnsClient:
    """Looks up one type at a name through the servers configured for that name."""

    def __init__(
        self,
        resolvers: Sequence[str] = (),
        zone_resolvers: Mapping[str, Sequence[str]] | None = None,
        timeout: float = 5.0,
    ) -> None:
        """``resolvers`` and the values of ``zone_resolvers`` are "ip:port" (port 53
        when omitted); ``timeout`` bounds the lookup of one name, all servers included.
        """
        self._default = tuple(parse_host_port(text, default_port=53) for text in resolvers)
        self._zones = {
            _normalise(zone): tuple(parse_host_port(t, default_port=53) for t in servers)
            for zone, servers in (zone_resolvers or {}).items()
        }
        self._timeout = timeout
        self._system: tuple[Server, ...] | None = None

    @classmethod
    def from_config(cls, config: ValidationConfig) -> DnsClient:
        return cls(config.resolvers, config.zone_resolvers, config.timeout.total_seconds())

    def servers_for(self, name: str) -> tuple[Server, ...]:
        """The longest zone suffix of ``name`` in zone_resolvers, else the resolvers."""
        key = _normalise(name)
        zones = [z for z in self._zones if key == z or key.endswith("." + z)]
        if zones:
            return self._zones[max(zones, key=len)]
        if self._default:
            return self._default
        return self._system_servers()

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        """The ``rdtype`` records at ``name``, following CNAMEs (at most 8 hops)."""
        start = _normalise(name)
        rdtype = rdtype.upper()
        chain = [start]
        servers: list[str] = []
        while True:
            subject = after_cnames(start, len(chain) - 1)
            response, server = await self._exchange(chain[-1], rdtype, subject)
            servers.append(server)
            malformed = f"malformed answer from {server} looking up {rdtype} for {subject}"
            if not isinstance(response, dns.message.QueryMessage):
                raise AcmeProblem(ProblemType.DNS, malformed)
            try:
                result = response.resolve_chaining()
            except dns.message.ChainTooLong:
                raise _chain_problem(start, rdtype, "is too long or loops", server) from None
            except dns.exception.DNSException:
                raise AcmeProblem(ProblemType.DNS, malformed) from None  # its text names names
            for cname in result.cnames:
                target = _normalise(cname[0].target.to_text())
                if target in chain:
                    raise _chain_problem(start, rdtype, "loops", server)
                chain.append(target)
                if len(chain) > MAX_CNAME_HOPS + 1:
                    raise _chain_problem(
                        start, rdtype, f"is longer than {MAX_CNAME_HOPS} CNAMEs", server
                    )
            if result.answer is not None:
                return DnsAnswer(start, rdtype, tuple(chain), tuple(servers), tuple(result.answer))
            if response.rcode() == dns.rcode.NXDOMAIN:
                return DnsAnswer(start, rdtype, tuple(chain), tuple(servers), nxdomain=True)
            if not result.cnames:  # the name exists, without records of this type
                return DnsAnswer(start, rdtype, tuple(chain), tuple(servers))
            # Only the CNAME came back (an authoritative server): ask for its target.

    async def _exchange(
        self, name: str, rdtype: str, subject: str
    ) -> tuple[dns.message.Message, str]:
        """One question to the servers for ``name``: the first NOERROR/NXDOMAIN answer.
        A problem names ``subject`` (the name first asked, see the module), not ``name``."""
        try:
            qname = dns.name.from_text(name + ".")
            query = dns.message.make_query(qname, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        except (dns.exception.DNSException, ValueError) as exc:
            raise AcmeProblem(
                ProblemType.MALFORMED, f"{subject!r} is not a DNS name: {exc}"
            ) from None
        servers = list(self.servers_for(name))
        failures: dict[Server, str] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        per_try = max(self._timeout / 3, 0.05)
        while servers:
            for server in list(servers):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    response = await udp_exchange(query, server, min(per_try, remaining))
                except (TimeoutError, dns.exception.Timeout):
                    failures[server] = _NO_ANSWER
                    continue
                except OSError as exc:
                    failures[server] = f"could not be reached: {exc.strerror or exc}"
                    servers.remove(server)
                    continue
                except dns.exception.DNSException as exc:
                    failures[server] = f"sent a malformed answer ({exc})"
                    servers.remove(server)
                    continue
                rcode = response.rcode()
                if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    return response, host_port(*server)
                failures[server] = f"answered {dns.rcode.to_text(rcode)}"
                servers.remove(server)
            if deadline - loop.time() <= 0:
                break
        raise self._failure(subject, rdtype, failures)

    def _failure(self, name: str, rdtype: str, failures: Mapping[Server, str]) -> AcmeProblem:
        where = f"looking up {rdtype} for {name}"
        if failures and all(reason == _NO_ANSWER for reason in failures.values()):
            asked = ", ".join(host_port(*s) for s in failures)
            return AcmeProblem(
                ProblemType.DNS, f"timed out after {self._timeout:g}s {where} at {asked}"
            )
        answers = "; ".join(f"{host_port(*s)} {r}" for s, r in failures.items())
        return AcmeProblem(ProblemType.DNS, f"DNS error {where}: {answers or 'no server'}")

    def _system_servers(self) -> tuple[Server, ...]:
        if self._system is None:
            try:
                system = dns.resolver.Resolver(configure=True)
            except dns.exception.DNSException as exc:
                raise AcmeProblem(
                    ProblemType.DNS,
                    f"no DNS resolver: [validation] resolvers is empty and the system "
                    f"configuration cannot be read ({exc})",
                ) from None
            servers: list[Server] = []
            for ns in system.nameservers:
                if isinstance(ns, str):
                    servers.append((ns, system.port))
                elif isinstance(ns, dns.nameserver.Do53Nameserver):
                    servers.append((ns.address, ns.port))
            self._system = tuple(servers)
        if not self._system:
            raise AcmeProblem(
                ProblemType.DNS,
                "no DNS resolver: [validation] resolvers is empty and the system has none",
            )
        return self._system


async def udp_exchange(query: dns.message.Message, server: Server,
                       timeout: float) -> dns.message.Message:
    """``query`` to ``server`` over UDP, again over TCP when the answer is truncated;
    TimeoutError after ``timeout`` seconds in all. A datagram from another address is
    ignored; the first from the server must parse and answer ``query`` (else
    ``DNSException``), as with ``udp_with_fallback(ignore_unexpected=True)``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    family = dns.inet.af_for_address(server[0])
    # (host, port) or (host, port, 0, scope index): "fe80::1%eth0" and "fe80::1%2" alike
    destination = dns.inet.low_level_address_tuple(server, family)
    packed = dns.inet.inet_pton(family, destination[0])
    async with asyncio.timeout_at(deadline):
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            await loop.sock_sendto(sock, query.to_wire(), destination)
            while True:
                wire, source = await loop.sock_recvfrom(sock, 65535)
                if _sent_by(source, destination, packed, family):
                    break
        try:
            response = dns.message.from_wire(
                wire, keyring=query.keyring, request_mac=query.mac, raise_on_truncation=True
            )
        except dns.message.Truncated:
            return await dns.asyncquery.tcp(query, server[0], port=server[1])
        if not query.is_response(response):
            raise dns.query.BadResponse
        return response


def _sent_by(source: tuple[Any, ...], destination: tuple[Any, ...], packed: bytes,
             family: int) -> bool:
    """Did the datagram from ``source`` (as ``recvfrom`` gives it) come from where the
    query went (``destination``, its address ``packed``)? The same address and port and,
    for IPv6, the same scope index (recvfrom names a link-local sender's interface in the
    text, "fe80::1%eth0", and by number): dnspython's ``_matches_destination``."""
    if source[1:] != destination[1:]:
        return False
    try:
        return dns.inet.inet_pton(family, source[0]) == packed
    except dns.exception.SyntaxError:
        return False


def _chain_problem(name: str, rdtype: str, what: str, server: str) -> AcmeProblem:
    return AcmeProblem(
        ProblemType.DNS, f"the CNAME chain from {name} ({rdtype}, at {server}) {what}"
    )


def after_cnames(name: str, hops: int) -> str:
    """'web.example', or 'web.example (after 2 CNAMEs)': a name for problem details."""
    if hops == 0:
        return name
    return f"{name} (after {hops} CNAME{'' if hops == 1 else 's'})"


def _normalise(name: str) -> str:
    return name.strip().lower().rstrip(".")


def txt_value(rdata: dns.rdata.Rdata) -> str:
    """One TXT record as one string: its character-strings concatenated (RFC 7208 3.3)."""
    strings: Sequence[bytes] = getattr(rdata, "strings", ())
    return b"".join(strings).decode("utf-8", errors="replace")
