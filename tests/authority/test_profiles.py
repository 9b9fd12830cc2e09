"""Which profile an order gets (draft-ietf-acme-profiles 4) under an account's grant
(the External Account Binding key's profiles and domains, authority/grants.py), and
what the profile and the grant let an order name. The protocol-level cases are in
tests/protocol/test_profiles.py; the grants a key makes cannot be had there yet."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from acme_ca.authority.grants import UNRESTRICTED, Grant
from acme_ca.authority.identifiers import IdentifiersRefused, check_identifiers
from acme_ca.authority.profiles import USAGE_OIDS, Catalog, ProfileRefused, key_type
from acme_ca.config import PolicyConfig
from acme_ca.config_policy import EXTENDED_KEY_USAGES, default_profiles
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType

PROFILES = default_profiles(timedelta(days=7), timedelta(days=90))
CATALOG = Catalog(PROFILES)
POLICY = PolicyConfig(allowed_domains=("bluerobin.local",),
                      allowed_ip_networks=(ipaddress.ip_network("10.0.0.0/8"),))
TEAM = Grant(profiles=("client", "mtls"), domains=("team.bluerobin.local",))


@pytest.mark.parametrize(("asked", "grant", "expected"), [
    (None, UNRESTRICTED, "server"),
    ("client", UNRESTRICTED, "client"),
    (None, TEAM, "client"),  # the grant does not allow the default: its first profile
    ("mtls", TEAM, "mtls"),
    (None, Grant(profiles=("mtls", "server")), "server"),  # the default, allowed
])
def test_the_profile_an_order_gets(asked: str | None, grant: Grant, expected: str) -> None:
    assert CATALOG.for_new_order(asked, grant).name == expected


def test_a_profile_outside_the_grant_is_invalid_profile() -> None:
    with pytest.raises(AcmeProblem) as refused:
        CATALOG.for_new_order("server", TEAM)
    assert refused.value.type is ProblemType.INVALID_PROFILE
    assert "may not use profile 'server'" in refused.value.detail
    with pytest.raises(ProfileRefused, match="allows: client, mtls"):
        CATALOG.in_use("server", TEAM)  # finalize, once the key no longer allows it


def test_a_grant_whose_first_profile_is_gone_is_invalid_profile() -> None:
    with pytest.raises(AcmeProblem) as refused:
        CATALOG.for_new_order(None, Grant(profiles=("nats",)))
    assert refused.value.type is ProblemType.INVALID_PROFILE
    assert "'nats' is unknown" in refused.value.detail


def test_a_grant_whose_first_profile_is_retired_gets_its_next() -> None:
    """An EAB key allowing (mtls, client), mtls since retired: an order naming no profile
    gets client, the first the grant allows that the CA still issues under (draft 4)."""
    profiles = {**PROFILES, "mtls": replace(PROFILES["mtls"], retired=True)}
    grant = Grant(profiles=("nats", "mtls", "client"))
    assert Catalog(profiles).for_new_order(None, grant).name == "client"


def refusal_types(names: list[Identifier], grant: Grant) -> list[ProblemType]:
    with pytest.raises(IdentifiersRefused) as refused:
        check_identifiers(names, POLICY, profile=PROFILES["client"], grant=grant)
    return [sub.type for sub in refused.value.problem(profile_named=True).subproblems]


def test_a_grant_with_domains_allows_names_at_or_under_them_only() -> None:
    """A team's key gets that team's names (rejectedIdentifier otherwise, RFC 8555 6.7)
    and, naming domains only, no IP address."""
    inside = [Identifier("dns", "team.bluerobin.local"),
              Identifier("dns", "db.team.bluerobin.local"),
              Identifier("dns", "*.team.bluerobin.local")]
    assert check_identifiers(inside, POLICY, grant=TEAM) == tuple(inside)
    outside = [Identifier("dns", "other.bluerobin.local"),
               Identifier("dns", "*.bluerobin.local"),
               Identifier("dns", "xteam.bluerobin.local"),
               Identifier("ip", "10.0.0.5")]
    assert refusal_types(outside, TEAM) == [ProblemType.REJECTED_IDENTIFIER] * 4
    assert check_identifiers([Identifier("ip", "10.0.0.5")], POLICY) == (
        Identifier("ip", "10.0.0.5"),)  # without a grant's domains: [policy] decides


@pytest.mark.parametrize(("key", "name"), [
    (ec.generate_private_key(ec.SECP256R1()), "ecdsa-p256"),
    (ec.generate_private_key(ec.SECP384R1()), "ecdsa-p384"),
    (ec.generate_private_key(ec.SECP521R1()), None),
    (rsa.generate_private_key(65537, 2048), "rsa2048"),
    (rsa.generate_private_key(65537, 2560), "rsa2048"),
    (rsa.generate_private_key(65537, 3072), "rsa3072"),
    (rsa.generate_private_key(65537, 4096), "rsa4096"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_key_types_as_profiles_name_them(key: object, name: str | None) -> None:
    assert key_type(key.public_key()) == name  # type: ignore[attr-defined]


def test_every_usage_a_profile_may_name_has_its_oid() -> None:
    """config_policy names the usages (RFC 5280 4.2.1.12), profiles.USAGE_OIDS encodes them."""
    assert tuple(USAGE_OIDS) == EXTENDED_KEY_USAGES
