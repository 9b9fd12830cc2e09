"""The one identifier policy of newOrder and sign-csr (authority/identifiers.py): every
refused identifier is named with its reason, in one error."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509

from acme_ca.authority.identifiers import IdentifiersRefused, check_identifiers, parse_identifiers
from acme_ca.config import PolicyConfig
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from tests.conftest import Hierarchy, reissue_intermediate

POLICY = PolicyConfig(
    allowed_domains=("bluerobin.local", "example.org"),
    denied_domains=("secret.bluerobin.local",),
    allowed_ip_networks=(ipaddress.ip_network("10.0.0.0/8"),),
)


def dns(value: str) -> Identifier:
    return Identifier("dns", value)


def test_accepted_identifiers_are_normalised_and_deduplicated() -> None:
    """RFC 8555 7.1.4 (lowercase A-labels), RFC 8738 (an address in its textual form)."""
    checked = check_identifiers(
        [dns("Web.BlueRobin.local"), dns("web.bluerobin.local"), dns("bücher.bluerobin.local"),
         Identifier("ip", "10.0.0.5")], POLICY)
    assert checked == (dns("web.bluerobin.local"), dns("xn--bcher-kva.bluerobin.local"),
                       Identifier("ip", "10.0.0.5"))


def test_every_refusal_is_collected_with_its_reason(hierarchy: Hierarchy) -> None:
    """Name policy, name constraints (RFC 5280 4.2.1.10) and the identifier type are all
    checked for every identifier; the message is one line naming each refusal."""
    asked = [dns("ok.bluerobin.local"), dns("db.secret.bluerobin.local"),
             Identifier("ip", "192.168.1.1"), dns("www.example.org"),
             Identifier("ip", "10.0.0.5"), Identifier("email", "ops@bluerobin.local")]
    with pytest.raises(IdentifiersRefused) as caught:
        check_identifiers(asked, POLICY, intermediate=hierarchy.intermediate)
    refusals = caught.value.refusals
    assert [r.identifier for r in refusals] == asked[1:]
    assert [r.type for r in refusals] == [ProblemType.REJECTED_IDENTIFIER] * 4 + [
        ProblemType.UNSUPPORTED_IDENTIFIER]
    message = str(caught.value)
    assert message.startswith("5 names refused: db.secret.bluerobin.local is under a denied")
    for fragment in ("IP address 192.168.1.1 is outside policy",
                     "www.example.org is outside the intermediate CA's name constraints",
                     "10.0.0.5 is outside the intermediate CA's name constraints",
                     "identifier type 'email' is not supported"):
        assert fragment in message
    assert "\n" not in message and "ok.bluerobin.local" not in message


def test_acme_gets_one_problem_with_a_subproblem_per_refusal(hierarchy: Hierarchy) -> None:
    """RFC 8555 6.7.1: a policy refusal and a name-constraints refusal in the same order
    are reported together (the constraints were once checked only after the policy)."""
    raw = [{"type": "dns", "value": "www.example.com"},
           {"type": "dns", "value": "www.example.org"},
           {"type": "dns", "value": "ok.bluerobin.local"}]
    with pytest.raises(AcmeProblem) as caught:
        parse_identifiers(raw, POLICY, ("http-01",), hierarchy.intermediate)
    problem = caught.value
    assert problem.type is ProblemType.REJECTED_IDENTIFIER
    assert [(s.identifier, s.type) for s in problem.subproblems] == [
        (dns("www.example.com"), ProblemType.REJECTED_IDENTIFIER),
        (dns("www.example.org"), ProblemType.REJECTED_IDENTIFIER)]
    assert "name constraints" in problem.subproblems[1].detail


def test_without_an_intermediate_name_constraints_are_not_checked() -> None:
    assert check_identifiers([dns("www.example.org")], POLICY) == (dns("www.example.org"),)



def test_an_ipv4_mapped_address_cannot_escape_an_ipv4_exclusion(hierarchy: Hierarchy) -> None:
    """RFC 8738 3 and RFC 5280 4.2.1.10: with every IPv6 address allowed and 10.0.0.0/8
    excluded by the intermediate, ::ffff:10.0.0.1 would make a certificate that Go
    accepts for 10.0.0.1. It is refused, whatever the policy and the constraints."""
    policy = PolicyConfig(allowed_domains=("bluerobin.local",),
                          allowed_ip_networks=(ipaddress.ip_network("::/0"),))
    intermediate = reissue_intermediate(hierarchy.paths, x509.NameConstraints(
        permitted_subtrees=None,
        excluded_subtrees=[x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))]))
    with pytest.raises(IdentifiersRefused, match="IPv4-mapped"):
        check_identifiers([Identifier("ip", "::ffff:10.0.0.1")], policy,
                          intermediate=intermediate)
    assert check_identifiers([Identifier("ip", "fd00::1")], policy,
                             intermediate=intermediate) == (Identifier("ip", "fd00::1"),)
