"""AddressPolicy: where validation may connect (RFC 8555 10.2 "Request forgery"; issue "a
validation authority that is safe to run inside a network").

Table tests: the always-denied addresses (link-local, cloud metadata, unspecified,
multicast, broadcast, and IPv6 forms carrying them) are refused whatever the
configuration; otherwise [validation] allowed_networks decides, by default private
ranges and loopback (config_networks.DEFAULT_ALLOWED_NETWORKS).
"""

from __future__ import annotations

import ipaddress

import pytest

from acme_ca.config import ValidationConfig
from acme_ca.config_networks import DEFAULT_ALLOWED_NETWORKS
from acme_ca.domain.problems import ProblemType
from acme_ca.validation.network import ALWAYS_DENIED, DENIED, AddressPolicy, denied_reason

DEFAULT = AddressPolicy()
EVERYTHING = AddressPolicy([ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")])
NEVER = "validation never connects there"

ALWAYS_REFUSED = [
    ("169.254.169.254", "is link-local (where cloud metadata services live)"),
    ("169.254.0.1", "is link-local"),
    ("169.254.255.255", "is link-local"),
    ("fe80::1", "is link-local"),
    ("fe80::1%eth0", "is link-local"),
    ("febf:ffff::1", "is link-local"),
    ("fd00:ec2::254", "is a cloud metadata address (AWS instance metadata over IPv6)"),
    ("100.100.100.200", "is a cloud metadata address (Alibaba Cloud)"),
    ("192.0.0.192", "is a cloud metadata address (Oracle Cloud)"),
    ("168.63.129.16", "is a cloud platform address (Azure WireServer)"),
    ("::ffff:169.254.169.254", "carries 169.254.169.254, link-local"),
    ("::ffff:0.0.0.0", "carries 0.0.0.0, unspecified"),
    ("64:ff9b::a9fe:a9fe", "carries 169.254.169.254, link-local"),  # NAT64
    ("2002:a9fe:a9fe::1", "carries 169.254.169.254, link-local"),  # 6to4
    ("0.0.0.0", "is unspecified"),  # noqa: S104 (an address under test, not a bind)
    ("0.1.2.3", "is unspecified"),
    ("::", "is unspecified"),
    ("224.0.0.1", "is multicast"),
    ("239.255.255.250", "is multicast"),
    ("ff02::1", "is multicast"),
    ("255.255.255.255", "is broadcast"),
]

ALLOWED_BY_DEFAULT = [
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.10",
    "100.64.0.1",  # shared address space (carrier-grade NAT, often internal)
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "fc00::1",
    "fd12:3456:789a::1",
    "::ffff:10.1.2.3",  # IPv4-mapped: judged as the IPv4 address it reaches
    "::ffff:127.0.0.1",
]

OUTSIDE_BY_DEFAULT = [
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",
    "192.169.0.1",
    "100.128.0.1",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8: not denied, but not allowed either
    "fec0::1",  # deprecated site-local
]


@pytest.mark.parametrize(("text", "why"), ALWAYS_REFUSED, ids=[t for t, _ in ALWAYS_REFUSED])
@pytest.mark.parametrize("policy", [DEFAULT, EVERYTHING], ids=["default", "allow-all"])
def test_always_denied_whatever_the_configuration(text: str, why: str, policy: AddressPolicy):
    """Link-local, metadata, unspecified, multicast, broadcast: refused even if allowed."""
    address = ipaddress.ip_address(text)
    problem = policy.problem(address, text)
    assert problem is not None
    assert problem.type is ProblemType.CONNECTION
    assert problem.detail.startswith(f"{address} {why}")
    assert problem.detail.endswith(f": {NEVER}")
    assert denied_reason(address) is not None


@pytest.mark.parametrize("text", ALLOWED_BY_DEFAULT)
def test_private_ranges_and_loopback_are_allowed_by_default(text: str):
    """An internal CA validates internal names: the default allows what they resolve to."""
    assert DEFAULT.problem(ipaddress.ip_address(text), "web.bluerobin.local") is None


@pytest.mark.parametrize("text", OUTSIDE_BY_DEFAULT)
def test_public_addresses_are_refused_by_default(text: str):
    """Outside allowed_networks: refused, though the address is not always denied."""
    address = ipaddress.ip_address(text)
    problem = DEFAULT.problem(address, "web.example.com")
    assert problem is not None
    assert problem.type is ProblemType.CONNECTION
    assert problem.detail == (
        f"web.example.com resolves to an address that is outside [validation] "
        f"allowed_networks: {NEVER}"
    )
    assert denied_reason(address) is None
    assert EVERYTHING.problem(address, "web.example.com") is None


def test_configured_networks_replace_the_default():
    """allowed_networks = ["10.0.0.0/8"]: loopback and other private ranges are refused."""
    policy = AddressPolicy([ipaddress.ip_network("10.0.0.0/8")])
    assert policy.problem(ipaddress.ip_address("10.9.8.7"), "a") is None
    for text in ("127.0.0.1", "192.168.1.1", "::1", "::ffff:127.0.0.1"):
        assert policy.problem(ipaddress.ip_address(text), "a") is not None, text


def test_an_ipv4_network_does_not_allow_ipv6_addresses():
    """Versions never mix: 0.0.0.0/0 says nothing about IPv6 (except mapped addresses)."""
    policy = AddressPolicy([ipaddress.ip_network("0.0.0.0/0")])
    assert policy.problem(ipaddress.ip_address("2001:db8::1"), "a") is not None
    assert policy.problem(ipaddress.ip_address("::ffff:8.8.8.8"), "a") is None


def test_detail_names_a_literal_but_never_the_address_a_name_resolved_to():
    """An IP identifier is named with the reason it is refused; a name is named alone:
    what it resolved to is DNS data (RFC 8555 10.2; test_no_probe)."""
    metadata = ipaddress.ip_address("169.254.169.254")
    named = DEFAULT.problem(metadata, "metadata.bluerobin.local")
    literal = DEFAULT.problem(metadata, "169.254.169.254")
    bracketed = DEFAULT.problem(ipaddress.ip_address("fe80::1"), "[fe80::1]")
    assert named is not None and literal is not None and bracketed is not None
    assert named.detail == (
        "metadata.bluerobin.local resolves to an address that is always refused "
        f"(link-local, cloud metadata, unspecified, multicast or broadcast): {NEVER}"
    )
    assert literal.detail == (
        f"169.254.169.254 is link-local (where cloud metadata services live): {NEVER}"
    )
    assert bracketed.detail == f"fe80::1 is link-local: {NEVER}"


def test_allowed_addresses_keeps_order_and_reports_the_first_refused():
    """A mixed answer keeps the allowed addresses (Boulder drops reserved ones)."""
    addresses = [
        ipaddress.ip_address(a) for a in ("169.254.169.254", "10.0.0.2", "8.8.8.8", "10.0.0.1")
    ]
    allowed, problem = DEFAULT.allowed_addresses(addresses, "web.bluerobin.local")
    assert [str(a) for a in allowed] == ["10.0.0.2", "10.0.0.1"]
    assert problem is not None
    assert "an address that is always refused" in problem.detail
    assert DEFAULT.allowed_addresses(addresses[1:2], "x") == (addresses[1:2], None)
    assert DEFAULT.allowed_addresses(addresses[2:3], "x")[0] == []


def test_default_policy_is_the_configuration_default():
    """AddressPolicy() and ValidationConfig() agree; a list given is copied, not shared."""
    assert tuple(DEFAULT.allowed) == DEFAULT_ALLOWED_NETWORKS
    assert ValidationConfig().allowed_networks == DEFAULT_ALLOWED_NETWORKS
    networks = [ipaddress.ip_network("10.0.0.0/8")]
    policy = AddressPolicy(networks)
    networks.append(ipaddress.ip_network("0.0.0.0/0"))
    assert policy.problem(ipaddress.ip_address("8.8.8.8"), "a") is not None


def test_denied_table_and_always_denied_agree():
    """ALWAYS_DENIED (the networks) is DENIED without the reasons, in the same order."""
    assert [network for network, _ in DENIED] == list(ALWAYS_DENIED)
    metadata = ipaddress.ip_address("169.254.169.254")
    assert any(metadata.version == n.version and metadata in n for n in ALWAYS_DENIED)
