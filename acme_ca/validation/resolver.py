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

from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.dns import DnsClient
from acme_ca.validation.network import host_port, ip_literal

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Resolver:
    """Resolves host names for validation; every failure is a ``dns`` problem.

    The hosts table first; then DNS through the ``DnsClient`` (the resolvers for the
    name's zone, else the configured resolvers); with no resolver configured for the
    name, the system resolver (getaddrinfo, which also reads /etc/hosts).
    """

    def __init__(
        self,
        hosts: Mapping[str, str],
        resolvers: Sequence[str],
        timeout: float = 5.0,
        *,
        zone_resolvers: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._hosts = {
            _normalise(name): ipaddress.ip_address(address) for name, address in hosts.items()
        }
        self._timeout = timeout
        self._has_default = bool(resolvers)
        self._zones = tuple(_normalise(z) for z in (zone_resolvers or {}))
        self._dns = DnsClient(resolvers, zone_resolvers, timeout)

    def _uses_dns(self, name: str) -> bool:
        return self._has_default or any(name == z or name.endswith("." + z) for z in self._zones)

    def description_for(self, name: str) -> str:
        """Who is asked after the hosts table, for problem details."""
        if not self._uses_dns(name):
            return "the system resolver"
        servers = self._dns.servers_for(name)
        return "resolver " + ", ".join(host_port(h, p) for h, p in servers)

    async def resolve(self, name: str) -> list[Address]:
        """The addresses for ``name``, IPv4 first; raises AcmeProblem(dns) when none."""
        literal = ip_literal(name)
        if literal is not None:
            return [literal]
        key = _normalise(name)
        if key in self._hosts:
            return [self._hosts[key]]
        if not key:
            raise AcmeProblem(ProblemType.DNS, f"cannot resolve an empty name {name!r}")
        if self._uses_dns(key):
            return await self._resolve_dns(key)
        return await self._resolve_system(key)

    async def _resolve_dns(self, name: str) -> list[Address]:
        answers = await asyncio.gather(
            *(self._dns.query(name, rdtype) for rdtype in ("A", "AAAA")), return_exceptions=True
        )
        addresses: list[Address] = []
        failures: list[AcmeProblem] = []
        for answer in answers:
            if isinstance(answer, AcmeProblem):
                failures.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            elif answer.nxdomain:
                failures.append(
                    AcmeProblem(
                        ProblemType.DNS,
                        f"NXDOMAIN looking up {name} at {answer.server}: no such name",
                    )
                )
            else:
                addresses.extend(ipaddress.ip_address(r.address) for r in answer.rdatas)
        if addresses:  # one family answering is enough (an AAAA SERVFAIL is common)
            return _unique(addresses)
        if failures:
            raise failures[0]
        raise AcmeProblem(
            ProblemType.DNS,
            f"no A or AAAA records found for {name} at {self.description_for(name)}",
        )

    async def _resolve_system(self, name: str) -> list[Address]:
        where = f"looking up {name} with the system resolver"
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


def _unique(addresses: Iterable[Address]) -> list[Address]:
    return list(dict.fromkeys(addresses))
