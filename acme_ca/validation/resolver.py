"""Names to addresses for the validators: the static hosts table, then DNS.

Order of consultation (RFC 8555 8.3 leaves the lookup to the CA):
1. an IP literal resolves to itself;
2. ``[validation] hosts`` (name -> address), for names that no DNS knows;
3. the configured ``[validation] resolvers`` ("ip:port"), asked for A and AAAA through
   dnspython's asyncio resolver, or the system resolver (``getaddrinfo``) when none are
   configured.

Every failure (NXDOMAIN, SERVFAIL, no address, timeout) is an ``AcmeProblem`` of type
``dns`` whose detail names the name and the resolver asked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from acme_ca.config import parse_host_port
from acme_ca.domain.problems import AcmeProblem, ProblemType

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Resolver:
    """Resolves host names for validation; every failure is a ``dns`` problem."""

    def __init__(
        self, hosts: Mapping[str, str], resolvers: Sequence[str], timeout: float = 5.0
    ) -> None:
        self._hosts = {
            _normalise(name): ipaddress.ip_address(address) for name, address in hosts.items()
        }
        self._timeout = timeout
        self._servers = tuple(parse_host_port(text, default_port=53) for text in resolvers)
        self._dns: dns.asyncresolver.Resolver | None = None
        if self._servers:
            self._dns = dns.asyncresolver.Resolver(configure=False)
            self._dns.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in self._servers
            ]
            self._dns.timeout = timeout
            self._dns.lifetime = timeout
            self._dns.cache = None

    @property
    def description(self) -> str:
        """Who is asked after the hosts table, for problem details."""
        if not self._servers:
            return "the system resolver"
        return "resolver " + ", ".join(_host_port(h, p) for h, p in self._servers)

    async def resolve(self, name: str) -> list[Address]:
        """The addresses for ``name``, IPv4 first; raises AcmeProblem(dns) when none."""
        literal = _ip_literal(name)
        if literal is not None:
            return [literal]
        key = _normalise(name)
        if key in self._hosts:
            return [self._hosts[key]]
        if not key:
            raise AcmeProblem(ProblemType.DNS, f"cannot resolve an empty name {name!r}")
        if self._dns is not None:
            return await self._resolve_dns(key)
        return await self._resolve_system(key)

    async def _resolve_dns(self, name: str) -> list[Address]:
        assert self._dns is not None
        queries = [self._query(name, rdtype) for rdtype in ("A", "AAAA")]
        outcomes = await asyncio.gather(*queries, return_exceptions=True)
        addresses: list[Address] = []
        failures: list[AcmeProblem] = []
        for outcome in outcomes:
            if isinstance(outcome, AcmeProblem):
                failures.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                addresses.extend(outcome)
        if addresses:  # one family answering is enough (an AAAA SERVFAIL is common)
            return _unique(addresses)
        if failures:
            raise failures[0]
        raise AcmeProblem(
            ProblemType.DNS, f"no A or AAAA records found for {name} at {self.description}"
        )

    async def _query(self, name: str, rdtype: str) -> list[Address]:
        assert self._dns is not None
        where = f"looking up {rdtype} for {name} at {self.description}"
        try:
            answer = await self._dns.resolve(
                name + ".", rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            raise AcmeProblem(ProblemType.DNS, f"NXDOMAIN {where}: no such name") from None
        except dns.resolver.NoNameservers as exc:
            answers = _server_errors(exc.kwargs.get("errors") or ())
            raise AcmeProblem(ProblemType.DNS, f"DNS error {where}: {answers}") from None
        except dns.exception.Timeout:
            raise AcmeProblem(
                ProblemType.DNS, f"timed out after {self._timeout:g}s {where}"
            ) from None
        except dns.exception.DNSException as exc:
            raise AcmeProblem(ProblemType.DNS, f"DNS error {where}: {exc}") from None
        if answer.rrset is None:
            return []
        return [ipaddress.ip_address(rdata.address) for rdata in answer.rrset]

    async def _resolve_system(self, name: str) -> list[Address]:
        where = f"looking up {name} with {self.description}"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise AcmeProblem(
                ProblemType.DNS, f"timed out after {self._timeout:g}s {where}"
            ) from None
        except socket.gaierror as exc:
            reason = "no such name" if exc.errno == socket.EAI_NONAME else exc.strerror
            raise AcmeProblem(ProblemType.DNS, f"DNS error {where}: {reason}") from None
        except (OSError, UnicodeError) as exc:
            raise AcmeProblem(ProblemType.DNS, f"DNS error {where}: {exc}") from None
        found = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
        if not found:
            raise AcmeProblem(ProblemType.DNS, f"no addresses found {where}")
        return _unique(sorted(found, key=lambda a: a.version))


def _normalise(name: str) -> str:
    return name.strip().lower().rstrip(".")


def _ip_literal(name: str) -> Address | None:
    try:
        return ipaddress.ip_address(name.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def _host_port(host: str, port: object) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _unique(addresses: Iterable[Address]) -> list[Address]:
    return list(dict.fromkeys(addresses))


def _server_errors(errors: Iterable[tuple[object, ...]]) -> str:
    """dnspython's (server, tcp, port, error, response) tuples -> '127.0.0.1:53 answered X'."""
    texts = [f"{_host_port(str(e[0]), e[2])} answered {e[3]}" for e in errors]
    return "; ".join(texts) or "all resolvers failed"
