"""The validation resolver: IP literals, the static hosts table, then DNS.

DNS answers come from the fake server in conftest.py (``FakeDns``) that answers from a
table, with a chosen rcode (NXDOMAIN, SERVFAIL), or not at all.
"""

from __future__ import annotations

import ipaddress
import time

import dns.rcode
import pytest

from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.resolver import Resolver
from tests.validation import conftest

# The fake server moved to conftest.py; test_http01 still imports these two from here.
StartDns = conftest.StartDns
fake_dns = conftest.fake_dns

NAME = "web.bluerobin.local"


async def problem_of(resolver: Resolver, name: str) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as caught:
        await resolver.resolve(name)
    return caught.value


async def test_ip_literals_resolve_to_themselves(fake_dns: StartDns):
    """RFC 8738: an IP identifier needs no lookup; no resolver is asked."""
    server, address = await fake_dns()
    resolver = Resolver({}, [address])
    assert await resolver.resolve("192.0.2.7") == [ipaddress.ip_address("192.0.2.7")]
    assert await resolver.resolve("2001:db8::1") == [ipaddress.ip_address("2001:db8::1")]
    assert await resolver.resolve("[::1]") == [ipaddress.ip_address("::1")]
    assert server.queries == []


async def test_hosts_table_is_consulted_before_dns(fake_dns: StartDns):
    """[validation] hosts wins over DNS, matched case-insensitively, trailing dot ignored."""
    server, address = await fake_dns(answers={NAME: ["10.9.9.9"]})
    resolver = Resolver({NAME: "127.0.0.1"}, [address])
    assert await resolver.resolve(NAME) == [ipaddress.ip_address("127.0.0.1")]
    assert await resolver.resolve("Web.BlueRobin.Local.") == [ipaddress.ip_address("127.0.0.1")]
    assert server.queries == []


async def test_hosts_table_needs_no_reachable_resolver(fake_dns: StartDns):
    """A name in the hosts table resolves at once even when the resolver never answers."""
    _, address = await fake_dns(silent=True)
    resolver = Resolver({NAME: "::1"}, [address], timeout=2)
    started = time.monotonic()
    assert await resolver.resolve(NAME) == [ipaddress.ip_address("::1")]
    assert time.monotonic() - started < 0.5


async def test_configured_resolver_answers_a_and_aaaa(fake_dns: StartDns):
    """Names outside the hosts table go to the configured resolver: A first, then AAAA."""
    server, address = await fake_dns(answers={NAME: ["2001:db8::5", "10.0.0.5", "10.0.0.6"]})
    resolver = Resolver({"other.bluerobin.local": "127.0.0.1"}, [address])
    found = await resolver.resolve(NAME)
    assert [a.version for a in found] == [4, 4, 6]
    assert set(map(str, found)) == {"10.0.0.5", "10.0.0.6", "2001:db8::5"}
    assert sorted(server.queries) == [(NAME, "A"), (NAME, "AAAA")]


async def test_one_family_is_enough(fake_dns: StartDns):
    """Only an A record (AAAA answers no data): the IPv4 address is the answer."""
    _, address = await fake_dns(answers={NAME: ["10.0.0.5"]})
    assert await Resolver({}, [address]).resolve(NAME) == [ipaddress.ip_address("10.0.0.5")]


async def test_nxdomain_is_a_dns_problem_naming_name_and_resolver(fake_dns: StartDns):
    """RFC 8555 6.7 dns problem: NXDOMAIN, with the name and the resolver in the detail."""
    _, address = await fake_dns()
    problem = await problem_of(Resolver({}, [address]), "missing.bluerobin.local")
    assert problem.type is ProblemType.DNS
    assert "NXDOMAIN" in problem.detail
    assert "missing.bluerobin.local" in problem.detail
    assert address in problem.detail


async def test_servfail_is_a_dns_problem(fake_dns: StartDns):
    """A resolver answering SERVFAIL gives a dns problem that says SERVFAIL."""
    _, address = await fake_dns(rcodes={NAME: dns.rcode.SERVFAIL})
    problem = await problem_of(Resolver({}, [address]), NAME)
    assert problem.type is ProblemType.DNS
    assert "SERVFAIL" in problem.detail
    assert NAME in problem.detail
    assert address in problem.detail


async def test_no_address_records_is_a_dns_problem(fake_dns: StartDns):
    """The name exists but has neither A nor AAAA records."""
    _, address = await fake_dns(answers={NAME: []})
    problem = await problem_of(Resolver({}, [address]), NAME)
    assert problem.type is ProblemType.DNS
    assert f"no A or AAAA records found for {NAME}" in problem.detail


async def test_silent_resolver_times_out_as_a_dns_problem(fake_dns: StartDns):
    """A resolver that never answers: a dns problem within the timeout, naming both."""
    _, address = await fake_dns(silent=True)
    started = time.monotonic()
    problem = await problem_of(Resolver({}, [address], timeout=0.3), NAME)
    assert time.monotonic() - started < 2
    assert problem.type is ProblemType.DNS
    assert "timed out after 0.3s" in problem.detail
    assert NAME in problem.detail
    assert address in problem.detail


async def test_system_resolver_when_none_configured():
    """No [validation] resolvers: getaddrinfo answers (localhost is loopback everywhere)."""
    found = await Resolver({}, []).resolve("localhost")
    assert found
    assert all(a.is_loopback for a in found)


async def test_system_resolver_failure_is_a_dns_problem():
    """RFC 6761 .invalid never resolves: a dns problem naming the system resolver."""
    problem = await problem_of(Resolver({}, [], timeout=2), "nothing.invalid")
    assert problem.type is ProblemType.DNS
    assert "nothing.invalid" in problem.detail
    assert "system resolver" in problem.detail


async def test_empty_name_is_a_dns_problem():
    problem = await problem_of(Resolver({}, []), "")
    assert problem.type is ProblemType.DNS
