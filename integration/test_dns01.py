"""dns-01 through a real BIND 9: certbot (certbot-dns-rfc2136) and lego (rfc2136).

A `named` started by the test (integration.bind9) is authoritative for bluerobin.local
and takes TSIG-signed RFC 2136 updates of _acme-challenge TXT records. The clients
write their TXT records there; `acme-ca serve` reads them back through [validation]
resolvers, or through [validation] zone_resolvers for the split-horizon case, where no
global resolver is set and the system resolver knows nothing of bluerobin.local.
Each wildcard certificate is checked with openssl against the root.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from integration.bind9 import Bind9, serving_bind9
from integration.clients import (
    AcmeServer,
    expect_ok,
    load_certs,
    run_client,
    san_names,
    split_chain,
    verify_chain,
)
from integration.conftest import require_program, serving_acme_validation

pytestmark = pytest.mark.integration


@pytest.fixture
def bind9(tmp_path: Path) -> Iterator[Bind9]:
    with serving_bind9(tmp_path / "bind9") as server:
        yield server


def serve(tmp_path: Path, validation: str) -> Iterator[AcmeServer]:
    with serving_acme_validation(tmp_path / "acme-ca", validation) as acme:
        yield acme


@pytest.fixture
def acme_via_bind(tmp_path: Path, bind9: Bind9) -> Iterator[AcmeServer]:
    """The CA resolving every name through the test's named ([validation] resolvers)."""
    yield from serve(tmp_path, f'resolvers = ["{bind9.address}"]')


@pytest.fixture
def acme_via_zone_resolver(tmp_path: Path, bind9: Bind9) -> Iterator[AcmeServer]:
    """The CA asking the test's named for bluerobin.local only (split horizon)."""
    yield from serve(tmp_path, f'zone_resolvers = {{ "bluerobin.local" = ["{bind9.address}"] }}')


def updates_logged(bind9: Bind9, name: str) -> list[str]:
    """named's log lines of TSIG-signed additions of TXT at `name`."""
    pattern = re.compile(rf"/key {bind9.key_name}: .*adding an RR at '{re.escape(name)}' TXT")
    return [line for line in bind9.log().splitlines() if pattern.search(line)]


def check_wildcard(cert: Path, chain: Path, root: Path, names: set[str]) -> None:
    leaf = load_certs(cert)[0]
    assert san_names(leaf) == names
    verify_chain(root, cert, chain)


def certbot_dns(
    acme: AcmeServer, bind9: Bind9, home: Path, *domains: str
) -> tuple[subprocess.CompletedProcess[str], float, Path]:
    """certbot certonly --dns-rfc2136 for `domains`: result, wall time, the live dir."""
    program = require_program(str(Path(sys.executable).parent / "certbot"))
    home.mkdir(parents=True, exist_ok=True)
    ini = home / "rfc2136.ini"
    ini.write_text(
        "dns_rfc2136_server = 127.0.0.1\n"
        f"dns_rfc2136_port = {bind9.port}\n"
        f"dns_rfc2136_name = {bind9.key_name}\n"
        f"dns_rfc2136_secret = {bind9.secret}\n"
        "dns_rfc2136_algorithm = HMAC-SHA256\n",
        encoding="utf-8",
    )
    os.chmod(ini, 0o600)
    argv = [program, "certonly", "--non-interactive", "--agree-tos"]
    argv += ["--register-unsafely-without-email", "--server", acme.directory]
    argv += ["--dns-rfc2136", "--dns-rfc2136-credentials", str(ini)]
    argv += ["--dns-rfc2136-propagation-seconds", "1"]
    for name in ("config", "work", "logs"):
        argv += [f"--{name}-dir", str(home / name)]
    for domain in domains:
        argv += ["-d", domain]
    env = {"REQUESTS_CA_BUNDLE": str(acme.root_cert)}
    result, elapsed = run_client(argv, cwd=home, env=env, acme=acme)
    return result, elapsed, home / "config" / "live"


def run_certbot_wildcard(acme: AcmeServer, bind9: Bind9, home: Path, label: str) -> None:
    domains = ("*.web.bluerobin.local", "web.bluerobin.local")
    result, elapsed, live = certbot_dns(acme, bind9, home, *domains)
    print(f"\ncertbot certonly --dns-rfc2136 ({label}, *.web + web): {elapsed:.2f} s")
    expect_ok(result, acme)
    # both TXT values (wildcard and base name share the challenge name) went through named
    assert len(updates_logged(bind9, "_acme-challenge.web.bluerobin.local")) >= 2, bind9.log()
    lineages = sorted(p.parent for p in live.glob("*/cert.pem"))
    assert len(lineages) == 1, lineages
    lineage = lineages[0]
    check_wildcard(lineage / "cert.pem", lineage / "chain.pem", acme.root_cert, set(domains))
    # certbot cleaned up after itself, through named as well
    assert bind9.txt("_acme-challenge.web.bluerobin.local") == []


def test_bind9_takes_only_signed_challenge_updates(bind9: Bind9) -> None:
    """The fixture itself: TSIG enforced, only _acme-challenge names, UDP and TCP answers."""
    name = "_acme-challenge.db.bluerobin.local"
    assert bind9.update(name, "unsigned", signed=False) == dns.rcode.REFUSED
    assert bind9.update("db.bluerobin.local", "not-a-challenge") == dns.rcode.REFUSED
    assert bind9.update(name, "signed") == dns.rcode.NOERROR
    assert bind9.txt(name) == ["signed"]
    answer = bind9.query("web.bluerobin.local", "A", tcp=True)
    assert [rdata.address for rrset in answer.answer for rdata in rrset] == ["127.0.0.1"]


def test_certbot_rfc2136_wildcard(acme_via_bind: AcmeServer, bind9: Bind9, tmp_path: Path) -> None:
    run_certbot_wildcard(acme_via_bind, bind9, tmp_path / "certbot", "resolvers")


def test_certbot_rfc2136_zone_resolver(
    acme_via_zone_resolver: AcmeServer, bind9: Bind9, tmp_path: Path
) -> None:
    run_certbot_wildcard(acme_via_zone_resolver, bind9, tmp_path / "certbot", "zone_resolvers")


def test_lego_rfc2136_wildcard(acme_via_bind: AcmeServer, bind9: Bind9, tmp_path: Path) -> None:
    acme, home = acme_via_bind, tmp_path / "lego"
    home.mkdir(parents=True, exist_ok=True)
    argv = [require_program("lego"), "--server", acme.directory, "--accept-tos"]
    argv += ["--email", "admin@bluerobin.local", "--path", str(home)]
    argv += ["--domains", "*.api.bluerobin.local", "--dns", "rfc2136"]
    # named's NS (ns1.bluerobin.local) is not on port 53: no propagation check through it
    argv += ["--dns.resolvers", bind9.address, "--dns.disable-cp", "run"]
    env = {
        "LEGO_CA_CERTIFICATES": str(acme.root_cert),
        "RFC2136_NAMESERVER": bind9.address,
        "RFC2136_TSIG_KEY": bind9.key_name,
        "RFC2136_TSIG_SECRET": bind9.secret,
        "RFC2136_TSIG_ALGORITHM": "hmac-sha256.",
        "RFC2136_PROPAGATION_TIMEOUT": "10",
        "RFC2136_POLLING_INTERVAL": "1",
        "RFC2136_TTL": "60",
    }
    result, elapsed = run_client(argv, cwd=home, env=env, acme=acme)
    print(f"\nlego run --dns rfc2136 (*.api): {elapsed:.2f} s")
    expect_ok(result, acme)
    assert updates_logged(bind9, "_acme-challenge.api.bluerobin.local"), bind9.log()
    bundle = home / "certificates" / "_.api.bluerobin.local.crt"
    cert, chain = split_chain(bundle.read_bytes(), tmp_path)
    check_wildcard(cert, chain, acme.root_cert, {"*.api.bluerobin.local"})
