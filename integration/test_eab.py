"""External Account Binding (RFC 8555 7.3.4) with real clients: certbot from PyPI
(--eab-kid, --eab-hmac-key) and Debian's lego 4.9 (--eab --kid --hmac) register
against a live `acme-ca serve` with [acme] eab_required = true, with keys made by
`acme-ca eab create`; each refusal reaches the client with its problem type.

The refusals each key state gets (wrong HMAC, reused, expired, revoked, malformed)
are all tested in process (tests/protocol/test_eab.py); here a real client meets each
of them but the malformed binding (which no client sends): the wrong HMAC (lego), and
the reused, expired and revoked keys and the revoked key's stopped orders (certbot),
each refused as unauthorized, the type as the client prints it. One served CA for the
module: each case makes its own keys and accounts.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.clients import (
    NAMES,
    AcmeServer,
    describe,
    expect_ok,
    load_certs,
    san_names,
    serving_acme,
    verify_chain,
)
from integration.conftest import run_cli
from integration.test_certbot import Certbot
from integration.test_lego import DOMAIN, Lego

pytestmark = pytest.mark.integration

# The problem type (RFC 8555 6.7) as the clients print it: certbot --debug shows the
# acme.messages.Error "TYPE :: The client lacks sufficient authorization :: DETAIL"
# (without --debug, the detail only); lego "... :: URL :: TYPE :: DETAIL".
UNAUTHORIZED = "urn:ietf:params:acme:error:unauthorized :: "


@pytest.fixture(scope="module")
def eab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeServer]:
    """`acme-ca serve` as integration.clients.serving_acme, with eab_required = true,
    shared by the module's tests."""
    workdir = tmp_path_factory.mktemp("eab") / "acme-ca"
    with serving_acme(workdir, "\n[acme]\neab_required = true\n") as acme:
        yield acme


def eab(acme: AcmeServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`acme-ca --config <the server's> eab ARGS`, beside the running server."""
    config = acme.server.data_dir.parent / "acme-ca.toml"
    return run_cli("--config", config, "eab", *args, cwd=config.parent)


def create_key(acme: AcmeServer, label: str, *args: str) -> tuple[str, str]:
    shown = json.loads(eab(acme, "create", "--label", label, *args, "--json").stdout)
    return shown["kid"], shown["hmac_key"]


def states(acme: AcmeServer) -> dict[str, str]:
    return {k["kid"]: k["state"] for k in json.loads(eab(acme, "list", "--json").stdout)}


def registration(acme: AcmeServer) -> list[str]:
    return ["--server", acme.directory, "--agree-tos", "-m", "ops@bluerobin.local", "--debug"]


def failed(result: subprocess.CompletedProcess[str], acme: AcmeServer, *needles: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, describe(result, acme)
    for needle in needles:
        assert needle in output, (needle, describe(result, acme))


def test_certbot_registers_with_a_key_and_loses_its_orders_when_revoked(
        eab_server: AcmeServer, tmp_path: Path) -> None:
    acme = eab_server
    server = registration(acme)
    standalone = ["--server", acme.directory, "--standalone", "--http-01-port",
                  str(acme.http01_port), "--http-01-address", "127.0.0.1", "-d", NAMES[0]]
    kid, hmac_key = create_key(acme, "team blue", "--domains", "bluerobin.local",
                               "--expires", "30d")
    certbot = Certbot(acme, tmp_path / "certbot")

    # certbot reads meta.externalAccountRequired and asks for a key before it registers
    result, _ = certbot("register", *server)
    failed(result, acme, "--eab-kid")

    result, _ = certbot("register", *server, "--eab-kid", kid, "--eab-hmac-key", hmac_key)
    expect_ok(result, acme)
    assert states(acme)[kid] == "bound"

    expect_ok(certbot("certonly", *standalone)[0], acme)
    leaf = load_certs(certbot.live / "cert.pem")[0]
    assert san_names(leaf) == {NAMES[0]}
    verify_chain(acme.root_cert, certbot.live / "cert.pem", certbot.live / "chain.pem")

    # the same EAB key for another account key: refused, unauthorized
    other = Certbot(acme, tmp_path / "other")
    result, _ = other("register", *server, "--eab-kid", kid, "--eab-hmac-key", hmac_key)
    failed(result, acme, UNAUTHORIZED, "already bound")

    # revoked: the account it bound opens no new order
    assert "Revoked" in eab(acme, "revoke", kid).stdout
    result, _ = certbot("certonly", *standalone, "--force-renewal", "--debug")
    failed(result, acme, UNAUTHORIZED, "was revoked")
    assert load_certs(certbot.live / "cert.pem")[0].serial_number == leaf.serial_number


def test_certbot_is_refused_an_expired_key(eab_server: AcmeServer, tmp_path: Path) -> None:
    acme = eab_server
    kid, hmac_key = create_key(acme, "team amber", "--expires", "1s")
    time.sleep(1.1)  # the key binds no account once its second is over
    assert states(acme)[kid] == "expired"
    certbot = Certbot(acme, tmp_path / "certbot")
    result, _ = certbot("register", *registration(acme), "--eab-kid", kid,
                        "--eab-hmac-key", hmac_key)
    failed(result, acme, UNAUTHORIZED, f"{kid} expired at")
    assert states(acme)[kid] == "expired"


def test_certbot_is_refused_a_revoked_key(eab_server: AcmeServer, tmp_path: Path) -> None:
    acme = eab_server
    kid, hmac_key = create_key(acme, "team grey")
    assert "Revoked" in eab(acme, "revoke", kid).stdout
    certbot = Certbot(acme, tmp_path / "certbot")
    result, _ = certbot("register", *registration(acme), "--eab-kid", kid,
                        "--eab-hmac-key", hmac_key)
    failed(result, acme, UNAUTHORIZED, f"{kid} (team grey) was revoked")
    assert states(acme)[kid] == "revoked"


def with_eab(lego: Lego, kid: str, hmac_key: str) -> Lego:
    """lego's global flags: `lego --eab --kid KID --hmac KEY ... run`."""
    lego.common += ["--eab", "--kid", kid, "--hmac", hmac_key]
    return lego


def test_lego_registers_with_a_key(eab_server: AcmeServer, tmp_path: Path) -> None:
    acme = eab_server
    kid, hmac_key = create_key(acme, "team green")
    _, other_hmac = create_key(acme, "team red")

    wrong = with_eab(Lego(acme, tmp_path / "wrong"), kid, other_hmac)
    result, _ = wrong("run")
    # lego prints "acme: error: 403 :: POST :: URL :: TYPE :: DETAIL"
    failed(result, acme, f"{UNAUTHORIZED}the externalAccountBinding MAC does not verify")

    lego = with_eab(Lego(acme, tmp_path / "lego"), kid, hmac_key)
    expect_ok(lego("run")[0], acme)
    assert san_names(load_certs(lego.certificate(".crt"))[0]) == {DOMAIN}
    assert states(acme)[kid] == "bound"
