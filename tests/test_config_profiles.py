"""[profiles.NAME] (draft-ietf-acme-profiles, as `acme-ca sign-csr --profile` reads them
too): the three defaults, tables over them key by key, new profiles, and one clear
error naming ``profiles.NAME.key`` for every wrong value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.config import load_config
from acme_ca.config_policy import KEY_TYPES, Profile
from tests.test_config import assert_one_line_error, write_config


def profiles_of(tmp_path: Path, text: str) -> dict[str, Profile]:
    return dict(load_config(write_config(tmp_path / "acme-ca.toml", text)).profiles)


def test_the_defaults_are_server_client_and_mtls_with_policys_validity(tmp_path: Path) -> None:
    profiles = profiles_of(tmp_path, '[policy]\ndefault_validity = "2d"\nmax_validity = "30d"\n')
    assert {name: p.extended_key_usages for name, p in profiles.items()} == {
        "server": ("serverAuth",), "client": ("clientAuth",),
        "mtls": ("serverAuth", "clientAuth")}
    for profile in profiles.values():
        assert (profile.default_validity, profile.max_validity) == (
            timedelta(days=2), timedelta(days=30))
        assert profile.key_types == KEY_TYPES
        assert profile.identifier_types == ("dns", "ip")
        assert (profile.allowed_domains, profile.retired) == ((), False)
    assert load_config(None).acme.default_profile == "server"


def test_a_table_named_like_a_default_overrides_it_key_by_key(tmp_path: Path) -> None:
    profiles = profiles_of(tmp_path, """
[policy]
allowed_domains = ["bluerobin.local"]
[profiles.client]
default_validity = "24h"
max_validity = "7d"
key_types = ["ecdsa-p256", "ecdsa-p256"]
identifier_types = ["dns"]
allowed_domains = ["Workers.bluerobin.local"]
""")
    client = profiles["client"]
    assert client.extended_key_usages == ("clientAuth",)  # kept from the default
    assert client.description.startswith("TLS clients")
    assert (client.default_validity, client.max_validity) == (
        timedelta(hours=24), timedelta(days=7))
    assert client.key_types == ("ecdsa-p256",)
    assert client.identifier_types == ("dns",)
    assert client.allowed_domains == ("workers.bluerobin.local",)
    assert profiles["server"].max_validity == timedelta(days=90)  # untouched


def test_allowed_domains_alone_leaves_ip_addresses_out(tmp_path: Path) -> None:
    """A profile setting allowed_domains issues for DNS names only unless its
    identifier_types names "ip" (config.example.toml, Profile)."""
    profiles = profiles_of(tmp_path, """
[policy]
allowed_domains = ["bluerobin.local"]
[profiles.client]
allowed_domains = ["workers.bluerobin.local"]
[profiles.mtls]
allowed_domains = ["workers.bluerobin.local"]
identifier_types = ["ip", "dns"]
""")
    assert profiles["client"].identifier_types == ("dns",)
    assert profiles["mtls"].identifier_types == ("ip", "dns")
    assert profiles["server"].identifier_types == ("dns", "ip")


def test_a_new_profile_and_a_retired_default(tmp_path: Path) -> None:
    profiles = profiles_of(tmp_path, """
[acme]
default_profile = "shortlived"
[profiles.shortlived]
description = "Six-day server certificates"
extended_key_usages = ["serverAuth"]
default_validity = "6d"
max_validity = "6d"
[profiles.mtls]
retired = true
""")
    assert profiles["shortlived"] == Profile(
        "shortlived", "Six-day server certificates", ("serverAuth",),
        timedelta(days=6), timedelta(days=6))
    assert profiles["mtls"].retired


BAD_PROFILES = [
    ("[profiles]\nclient = 3\n", "profiles.client must be a table"),
    ("[profiles.Client]\nretired = true\n", "profiles.Client: a profile name"),
    ("[profiles.client]\ncolour = 'red'\n", "unknown key profiles.client.colour"),
    ("[profiles.new]\ndescription = 'x'\n", "profiles.new.extended_key_usages is required"),
    ("[profiles.client]\ndescription = ''\n", "profiles.client.description: "),
    ("[profiles.client]\nextended_key_usages = []\n", "profiles.client.extended_key_usages: "),
    ("[profiles.client]\nextended_key_usages = ['codeSigning']\n",
     "profiles.client.extended_key_usages: 'codeSigning' is not one of serverAuth, clientAuth"),
    ("[profiles.client]\nkey_types = ['ed25519']\n", "profiles.client.key_types: "),
    ("[profiles.client]\nkey_types = 'rsa2048'\n", "profiles.client.key_types: "),
    ("[profiles.client]\nidentifier_types = ['email']\n", "profiles.client.identifier_types: "),
    ("[profiles.client]\ndefault_validity = 7\n", "profiles.client.default_validity: "),
    ("[profiles.client]\nmax_validity = '7x'\n", "profiles.client.max_validity: "),
    ("[profiles.client]\nretired = 'yes'\n", "profiles.client.retired: "),
    ("[profiles.client]\nallowed_domains = ['*.bluerobin.local']\n",
     "profiles.client.allowed_domains: "),
    ("[profiles.client]\nallowed_domains = ['example.com']\n",
     "profiles.client.allowed_domains: example.com is outside [policy] allowed_domains"),
    ("[profiles.client]\nallowed_domains = ['robin.local']\n",
     "profiles.client.allowed_domains: robin.local is outside"),
    ("[profiles.client]\ndefault_validity = '8d'\nmax_validity = '7d'\n",
     "profiles.client.default_validity (8d) exceeds profiles.client.max_validity (7d)"),
    ("[profiles.client]\nmax_validity = '91d'\n",
     "profiles.client.max_validity (91d) exceeds policy.max_validity (90d)"),
    ("[acme]\ndefault_profile = 'mtls'\n[profiles.mtls]\nretired = true\n",
     "acme.default_profile: 'mtls' is not a profile in use"),
    ("[acme]\ndefault_profile = 'nothing'\n", "acme.default_profile: 'nothing'"),
]


@pytest.mark.parametrize(("text", "start"), BAD_PROFILES)
def test_a_bad_profile_value_is_one_line_naming_its_key(
        tmp_path: Path, text: str, start: str) -> None:
    assert_one_line_error(tmp_path, text, start)
