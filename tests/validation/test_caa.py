"""CAA checking (RFC 8659, RFC 8657 accounturi and validationmethods).

The records are served by the fake DNS server of conftest.py over real UDP on
127.0.0.1; ``check`` returns None when this CA may issue, else the problem.
"""

from __future__ import annotations

import time

import dns.rcode
import pytest

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.caa import CaaChecker, IssueValue, parse_issue_value
from acme_ca.validation.dns import DnsClient
from tests.validation.conftest import StartDns

ZONE = "bluerobin.local"
NAME = f"web.{ZONE}"
CA = "ca.bluerobin.local"
ACCOUNT = "https://ca.bluerobin.local:8555/acme/acct/Xq3"


async def check(
    address: str,
    name: str = NAME,
    *,
    wildcard: bool = False,
    account: str = ACCOUNT,
    method: str = "dns-01",
    identities: tuple[str, ...] = (CA,),
    timeout: float = 2,
) -> AcmeProblem | None:
    checker = CaaChecker(DnsClient([address], timeout=timeout), identities)
    return await checker.check(
        Identifier("dns", name), wildcard=wildcard, account_uri=account, method=method
    )


async def caa_at(fake_dns: StartDns, name: str, *entries: str, **kwargs: object) -> str:
    """A server whose only CAA records are `entries` at `name`; returns its address."""
    _, address = await fake_dns(records={name: [f"CAA {e}" for e in entries]}, **kwargs)
    return address


async def test_no_caa_anywhere_allows(fake_dns: StartDns):
    """RFC 8659 3: no CAA at the name or any parent: any CA may issue.

    The climb asks every level up to, not including, the root; NXDOMAIN at a level
    (web.bluerobin.local is absent) counts as an empty set.
    """
    server, address = await fake_dns(records={ZONE: ["A 10.0.0.1"]})
    assert await check(address) is None
    assert server.queries == [(NAME, "CAA"), (ZONE, "CAA"), ("local", "CAA")]


async def test_issue_naming_this_ca_allows(fake_dns: StartDns):
    """RFC 8659 4.2: the issuer-domain-name matches one identity, ignoring case."""
    address = await caa_at(fake_dns, NAME, '0 issue "CA.BlueRobin.Local"')
    assert await check(address) is None


async def test_issue_for_another_ca_forbids(fake_dns: StartDns):
    """RFC 8659 4.2: an issue set that does not name this CA forbids issuance."""
    address = await caa_at(fake_dns, ZONE, '0 issue "ca.other.example"')
    problem = await check(address, ZONE)
    assert problem is not None
    assert problem.type is ProblemType.CAA
    assert problem.status == 403
    assert problem.identifier == Identifier("dns", ZONE)
    assert problem.detail == f"CAA at {ZONE} does not authorise this CA"


async def test_one_of_several_issue_records_suffices(fake_dns: StartDns):
    address = await caa_at(fake_dns, NAME, '0 issue "ca.other.example"', f'0 issue "{CA}"')
    assert await check(address) is None


async def test_any_configured_identity_matches(fake_dns: StartDns):
    address = await caa_at(fake_dns, NAME, '0 issue "acme.bluerobin.local"')
    assert await check(address, identities=(CA, "acme.bluerobin.local")) is None


@pytest.mark.parametrize("value", [";", "", "; accounturi=" + ACCOUNT])
async def test_empty_issuer_forbids(fake_dns: StartDns, value: str):
    """RFC 8659 4.2: an issue property with no issuer-domain-name authorises no CA."""
    address = await caa_at(fake_dns, NAME, f'0 issue "{value}"')
    problem = await check(address)
    assert problem is not None
    assert problem.type is ProblemType.CAA
    assert problem.detail == f"CAA at {NAME} does not authorise this CA"


async def test_parent_caa_found_by_climbing(fake_dns: StartDns):
    """RFC 8659 3: the relevant RRset may be at a parent; the detail names that level."""
    address = await caa_at(fake_dns, ZONE, '0 issue "ca.other.example"')
    problem = await check(address)
    assert problem is not None
    assert problem.type is ProblemType.CAA
    assert problem.detail == (
        f"CAA at {ZONE} does not authorise this CA (relevant for {NAME})"
    )


async def test_closest_caa_set_wins_over_the_parent(fake_dns: StartDns):
    """RFC 8659 3: the climb stops at the first non-empty set; parents are not asked."""
    records = {NAME: [f'CAA 0 issue "{CA}"'], ZONE: ['CAA 0 issue ";"']}
    server, address = await fake_dns(records=records)
    assert await check(address) is None
    assert server.queries == [(NAME, "CAA")]


async def test_caa_behind_a_cname_is_followed(fake_dns: StartDns):
    """RFC 8659 3: CAA lookups follow CNAMEs like any query; the target is counted,
    never named (test_no_probe)."""
    records = {
        NAME: ["CNAME lb.hosting.example."],
        "lb.hosting.example": ['CAA 0 issue "ca.other.example"'],
    }
    _, address = await fake_dns(records=records)
    problem = await check(address)
    assert problem is not None
    assert problem.detail == (
        f"CAA at {NAME} (after 1 CNAME) does not authorise this CA"
    )


async def test_issuewild_takes_precedence_for_a_wildcard(fake_dns: StartDns):
    """RFC 8659 4.3: for a wildcard, issuewild (when present) replaces issue."""
    address = await caa_at(
        fake_dns, ZONE, '0 issue "ca.other.example"', f'0 issuewild "{CA}"'
    )
    assert await check(address, ZONE, wildcard=True) is None
    assert await check(address, f"*.{ZONE}") is None  # "*." implies a wildcard too
    problem = await check(address, ZONE, wildcard=False)
    assert problem is not None
    assert problem.detail == f"CAA at {ZONE} does not authorise this CA"


async def test_issuewild_can_forbid_wildcards_only(fake_dns: StartDns):
    address = await caa_at(fake_dns, ZONE, f'0 issue "{CA}"', '0 issuewild ";"')
    assert await check(address, ZONE) is None
    problem = await check(address, ZONE, wildcard=True)
    assert problem is not None
    assert problem.type is ProblemType.CAA
    assert problem.detail == f"CAA issuewild at {ZONE} does not authorise this CA"


async def test_issue_applies_to_wildcards_without_issuewild(fake_dns: StartDns):
    """RFC 8659 4.3: with no issuewild property, issue governs wildcards as well."""
    address = await caa_at(fake_dns, ZONE, '0 issue "ca.other.example"')
    problem = await check(address, ZONE, wildcard=True)
    assert problem is not None
    assert problem.type is ProblemType.CAA


async def test_accounturi_mismatch_forbids(fake_dns: StartDns):
    """RFC 8657 3: accounturi limits this CA to one account; neither URL is named."""
    other = "https://ca.bluerobin.local:8555/acme/acct/Other"
    address = await caa_at(fake_dns, NAME, f'0 issue "{CA}; accounturi={other}"')
    problem = await check(address)
    assert problem is not None
    assert problem.type is ProblemType.CAA
    assert problem.detail == f"CAA at {NAME} does not authorise this account"


async def test_accounturi_match_allows(fake_dns: StartDns):
    address = await caa_at(fake_dns, NAME, f'0 issue "{CA}; accounturi={ACCOUNT}"')
    assert await check(address) is None


@pytest.mark.parametrize(
    ("methods", "allowed"),
    [("http-01,tls-alpn-01", False), ("http-01,dns-01", True), ("dns-01", True), ("", False)],
)
async def test_validationmethods(fake_dns: StartDns, methods: str, allowed: bool):
    """RFC 8657 4: validationmethods lists the ACME methods this CA may have used."""
    address = await caa_at(fake_dns, NAME, f'0 issue "{CA}; validationmethods={methods}"')
    problem = await check(address, method="dns-01")
    if allowed:
        assert problem is None
    else:
        assert problem is not None
        assert problem.type is ProblemType.CAA
        assert problem.detail == (
            f"CAA at {NAME} does not authorise this validation method (dns-01)"
        )


async def test_both_parameters_must_accept(fake_dns: StartDns):
    value = f"{CA}; accounturi={ACCOUNT}; validationmethods=http-01"
    address = await caa_at(fake_dns, NAME, f'0 issue "{value}"')
    assert await check(address, method="http-01") is None
    assert await check(address, method="dns-01") is not None


async def test_critical_unknown_tag_forbids(fake_dns: StartDns):
    """RFC 8659 4.1: a critical property this CA does not understand forbids issuance."""
    address = await caa_at(fake_dns, NAME, f'0 issue "{CA}"', '128 futuretag "x"')
    problem = await check(address)
    assert problem is not None
    assert problem.type is ProblemType.CAA
    assert problem.detail == (
        f"CAA at {NAME} has a critical property this CA does not understand"
    )


async def test_unknown_tag_without_critical_flag_is_ignored(fake_dns: StartDns):
    address = await caa_at(fake_dns, NAME, f'0 issue "{CA}"', '0 futuretag "x"')
    assert await check(address) is None


async def test_critical_known_tags_are_understood(fake_dns: StartDns):
    address = await caa_at(
        fake_dns, NAME, f'128 issue "{CA}"', '128 iodef "mailto:security@bluerobin.local"'
    )
    assert await check(address) is None


async def test_set_without_issue_properties_allows(fake_dns: StartDns):
    """RFC 8659 4.2: an RRset with only iodef places no restriction on issuance."""
    address = await caa_at(fake_dns, NAME, '0 iodef "mailto:security@bluerobin.local"')
    assert await check(address) is None


async def test_malformed_value_authorises_no_one(fake_dns: StartDns):
    address = await caa_at(fake_dns, NAME, f'0 issue "{CA}; accounturi"')
    problem = await check(address)
    assert problem is not None
    assert problem.type is ProblemType.CAA
    assert problem.detail == f"CAA at {NAME} does not authorise this CA"


async def test_no_identities_configured_and_an_issue_set_forbids(fake_dns: StartDns):
    address = await caa_at(fake_dns, NAME, f'0 issue "{CA}"')
    problem = await check(address, identities=())
    assert problem is not None
    assert problem.type is ProblemType.CAA


@pytest.mark.parametrize("level", [NAME, ZONE])
async def test_servfail_fails_closed(fake_dns: StartDns, level: str):
    """RFC 8659 3 leaves a failed lookup to the CA: we refuse, with a dns problem."""
    _, address = await fake_dns(
        records={ZONE: ["A 10.0.0.1"]}, rcodes={level: dns.rcode.SERVFAIL}
    )
    problem = await check(address)
    assert problem is not None
    assert problem.type is ProblemType.DNS
    assert problem.detail.startswith(f"cannot check CAA for {NAME}: ")
    assert f"{address} answered SERVFAIL" in problem.detail
    assert level in problem.detail


async def test_timeout_fails_closed(fake_dns: StartDns):
    _, address = await fake_dns(silent=True)
    started = time.monotonic()
    problem = await check(address, timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert problem is not None
    assert problem.type is ProblemType.DNS
    assert "timed out after 0.3s" in problem.detail


async def test_ip_identifiers_have_no_caa(fake_dns: StartDns):
    """CAA is defined for domain names (RFC 8659 1); IP identifiers are not looked up."""
    server, address = await fake_dns()
    checker = CaaChecker(DnsClient([address]), [CA])
    identifier = Identifier("ip", "10.0.0.5")
    problem = await checker.check(identifier, wildcard=False, account_uri=ACCOUNT, method="http-01")
    assert problem is None
    assert server.queries == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"ca.example", IssueValue("ca.example")),
        (b"  CA.Example ;  ", IssueValue("ca.example")),
        (b";", IssueValue("")),
        (b"ca.example; accounturi=https://x/acct/1",
         IssueValue("ca.example", {"accounturi": "https://x/acct/1"})),
        (b"ca.example;ValidationMethods=dns-01,http-01; other=1",
         IssueValue("ca.example", {"validationmethods": "dns-01,http-01", "other": "1"})),
    ],
)
def test_parse_issue_value(raw: bytes, expected: IssueValue):
    """RFC 8659 4.2 issue-value grammar."""
    assert parse_issue_value(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [b"ca_example", b"ca.example; a", b"ca.example; a=b c", b"ca.example; a=1; a=2",
     b"-ca.example", "c\u00e1.example".encode()],
)
def test_parse_issue_value_rejects(raw: bytes):
    with pytest.raises(ValueError):
        parse_issue_value(raw)
