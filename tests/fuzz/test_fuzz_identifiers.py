"""Fuzz: identifier normalisation (acme_ca/authority/identifiers.py, policy.py).

newOrder's "identifiers" go through parse_identifiers: any JSON there is an
AcmeProblem or a tuple of identifiers, and what is accepted is already normal (parsing
it again gives it back). Under it, normalize_dns_name and check_dns_name raise
PolicyError and nothing else, for any text.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from acme_ca.authority.identifiers import parse_identifiers
from acme_ca.authority.policy import check_dns_name, normalize_dns_name
from acme_ca.config import PolicyConfig
from acme_ca.domain.problems import AcmeProblem
from acme_ca.errors import PolicyError
from tests.fuzz.strategies import ANY_CHAR, JSON, NEAR_TEXT, fuzz, mutated_object, only_raises

POLICY = PolicyConfig(
    allowed_domains=("bluerobin.local", "xn--bcher-kva.example"),
    denied_domains=("secret.bluerobin.local",),
    allowed_ip_networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")),
)
CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")

# Labels that are nearly DNS: letters of several scripts, digits, hyphens, the
# wildcard, dots, case, punycode prefixes, characters IDNA maps or refuses.
IDNA_TRICKY = "éßİıΣς\u200d\u0301\uff21\uff22\u3002\uff0e"  # fullwidth A, B, ideographic dots
LABEL = st.text(st.sampled_from("abzAZ09-*_ " + IDNA_TRICKY) | ANY_CHAR, max_size=12) \
    | st.sampled_from(["xn--", "xn--bcher-kva", "xn--zz", "*", "", "-a", "a-"])
NAME = st.builds(lambda labels, suffix: ".".join([*labels, suffix]),
                 st.lists(LABEL, max_size=4),
                 st.sampled_from(["bluerobin.local", "BlueRobin.Local.", "secret.bluerobin.local",
                                  "bücher.example", "xn--bcher-kva.example", "local", ""]))
ADDRESS = st.ip_addresses().map(str) | st.sampled_from(["10.0.0.5", "010.0.0.5", "10.1",
                                                         "::ffff:10.0.0.5", "fd00::1%eth0"])
VALUE = NAME | ADDRESS | NEAR_TEXT
IDENTIFIER = st.fixed_dictionaries({"type": st.sampled_from(["dns", "ip", "email", "DNS"]),
                                    "value": VALUE})


def parse(raw: Any) -> Any:
    return only_raises(lambda: parse_identifiers(raw, POLICY, CHALLENGES), AcmeProblem)


@fuzz(2)
@given(st.lists(IDENTIFIER | IDENTIFIER.flatmap(mutated_object), max_size=5) | JSON)
@example([{"type": "dns", "value": "é.bluerobin.local"}])
@example([{"type": "ip", "value": "fd00::1%eth0"}])
def test_parse_identifiers(raw: Any) -> None:
    """Any "identifiers" value: an AcmeProblem, or identifiers that parse to themselves
    and that a certificate can carry (an ASCII DNS name; an IP address as the bytes of
    an iPAddress SAN, RFC 5280 4.2.1.6, which hold no IPv6 zone)."""
    parsed = parse(raw)
    if parsed is not None:
        again = parse([{"type": i.type, "value": i.value} for i in parsed])
        assert again == parsed, (raw, parsed, again)
        for identifier in parsed:
            if identifier.type == "ip":
                packed = ipaddress.ip_address(identifier.value).packed
                assert str(ipaddress.ip_address(packed)) == identifier.value, identifier
            else:
                assert identifier.value.isascii(), identifier


@fuzz()
@given(VALUE | st.text(ANY_CHAR))
def test_normalize_and_check_dns_name(value: str) -> None:
    name = only_raises(lambda: normalize_dns_name(value), PolicyError)
    if name is not None:
        only_raises(lambda: check_dns_name(name, POLICY.allowed_domains,
                                           POLICY.denied_domains), PolicyError)
