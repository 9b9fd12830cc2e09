"""[revocation] (config_revocation.py): the plain-HTTP listener of CRLs and OCSP, the
base URL the leaves carry (RFC 5280 4.2.1.13 CRL distribution points, 4.2.2.1 AIA), the
lifetimes of CRLs (RFC 5280 5.1.2.5) and OCSP responses (RFC 6960 4.2.2.1), the ARI
Retry-After (RFC 9773 4.3). A wrong value is a ConfigError naming the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca import config
from acme_ca.config import load_config
from acme_ca.config_revocation import RevocationConfig
from acme_ca.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def test_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    revocation = load_config(None).revocation
    assert revocation == RevocationConfig(base_url="http://127.0.0.1:8556")
    assert (revocation.listen_host, revocation.listen_port) == ("127.0.0.1", 8556)
    assert revocation.ocsp is False
    assert (revocation.crl_lifetime, revocation.ocsp_lifetime,
            revocation.renewal_info_retry_after) == (
        timedelta(hours=24), timedelta(hours=24), timedelta(hours=6))


def test_config_keeps_its_public_names() -> None:
    """The [revocation] code moved to config_revocation; callers import from config."""
    from acme_ca import config_revocation

    assert config.RevocationConfig is config_revocation.RevocationConfig
    assert config.default_publication_url is config_revocation.default_publication_url


@pytest.mark.parametrize(("server", "listen", "expected"), [
    ({}, None, "http://127.0.0.1:8556"),  # the Quick start: the address it serves on
    ({"server.hostname": "ca.bluerobin.local"}, None, "http://ca.bluerobin.local:8556"),
    ({"server.hostname": "ca.bluerobin.local"}, "0.0.0.0:80", "http://ca.bluerobin.local:80"),
    ({"server.external_url": "https://acme.bluerobin.local/"}, "10.0.0.5:8080",
     "http://acme.bluerobin.local:8080"),
    ({"server.listen": "[::1]:8555"}, "[::1]:8556", "http://[::1]:8556"),
])
def test_the_default_base_url_is_the_servers_host_and_the_listeners_port(
        server: dict[str, str], listen: str | None, expected: str) -> None:
    overrides = {**server, "revocation.http_listen": listen}
    assert load_config(None, overrides).revocation.base_url == expected


def test_a_base_url_given_is_kept_without_its_trailing_slash() -> None:
    revocation = load_config(None, {"revocation.base_url": "http://pki.bluerobin.local:80/",
                                    "revocation.ocsp": True}).revocation
    assert revocation.base_url == "http://pki.bluerobin.local:80"
    assert revocation.ocsp is True


@pytest.mark.parametrize(("key", "value"), [
    ("crl_lifetime", "1h"), ("crl_lifetime", "30d"), ("ocsp_lifetime", "1h"),
    ("ocsp_lifetime", "7d"), ("renewal_info_retry_after", "1m"),
    ("renewal_info_retry_after", "7d"),
])
def test_the_bounds_are_allowed(key: str, value: str) -> None:
    settings = load_config(None, {f"revocation.{key}": value}).revocation
    assert getattr(settings, key) == config.parse_duration(value)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("crl_lifetime", "59m", "revocation.crl_lifetime: 59m is outside 1h to 30d"),
    ("crl_lifetime", "31d", "outside 1h to 30d"),
    ("ocsp_lifetime", "8d", "revocation.ocsp_lifetime: 8d is outside 1h to 7d"),
    ("ocsp_lifetime", "30m", "outside 1h to 7d"),
    ("renewal_info_retry_after", "30s", "revocation.renewal_info_retry_after: 30s is outside"),
    ("renewal_info_retry_after", "8d", "outside 1m to 7d"),
    ("crl_lifetime", "a day", "revocation.crl_lifetime"),
    ("base_url", "https://pki.bluerobin.local", "revocation.base_url"),
    ("base_url", "http://pki.bluerobin.local/?x=1", "no path, query or fragment"),
    ("base_url", "http://pki.bluerobin.local#crl", "no path, query or fragment"),
    ("http_listen", "8556", "revocation.http_listen"),
    ("ocsp", "yes", "revocation.ocsp"),
    ("crl_url", "http://x", "unknown key revocation.crl_url"),
])
def test_a_wrong_value_is_refused_naming_its_key(key: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"revocation\.") as refused:
        load_config(None, {f"revocation.{key}": value})
    assert says in str(refused.value)


@pytest.mark.parametrize("value", ["http://ca.example:8556/pki", "http://ca.example/pki/"])
def test_a_base_url_with_a_path_is_refused(value: str) -> None:
    """RFC 5280 4.2.1.13: a leaf's CRL distribution point must be a URL that serves the
    CRL; the listener serves /crl/<issuer>.crl at its root, with no prefix, so a base
    URL with a path would put a 404 in every leaf."""
    with pytest.raises(ConfigError, match=r"revocation\.base_url") as refused:
        load_config(None, {"revocation.base_url": value})
    assert "no path" in str(refused.value)


@pytest.mark.parametrize(("acme", "plain"), [
    ("127.0.0.1:8555", "127.0.0.1:8555"),
    ("0.0.0.0:8555", "127.0.0.1:8555"),
    ("127.0.0.1:8555", "[::]:8555"),
])
def test_the_acme_listeners_address_is_refused(acme: str, plain: str) -> None:
    with pytest.raises(ConfigError, match=r"revocation.http_listen .* is the ACME "
                       r"listener's address .*: give it its own port"):
        load_config(None, {"server.listen": acme, "revocation.http_listen": plain})


def test_the_same_port_on_another_address_is_allowed() -> None:
    settings = load_config(None, {"server.listen": "127.0.0.1:8555",
                                  "revocation.http_listen": "10.0.0.5:8555"})
    assert settings.revocation.listen_port == 8555


def test_the_example_config_documents_the_defaults() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "[revocation]" in text
    for key in ("http_listen", "base_url", "ocsp", "crl_lifetime", "ocsp_lifetime",
                "renewal_info_retry_after"):
        assert f"# {key} = " in text, key
    assert load_config(EXAMPLE).revocation == load_config(
        None, {"server.hostname": load_config(EXAMPLE).server.hostname,
               "server.listen": load_config(EXAMPLE).server.listen,
               "server.external_url": load_config(EXAMPLE).server.external_url}).revocation
