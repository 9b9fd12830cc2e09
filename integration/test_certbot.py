"""certbot (the PyPI one, in this virtualenv) against a live `acme-ca serve`.

certonly --standalone for two names, renew --force-renewal, revoke twice. certbot
answers http-01 on 127.0.0.1:<http01_port>, where the server's [validation] hosts
table sends the test names. Each chain is checked with openssl and in a TLS handshake.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from integration.clients import (
    NAMES,
    AcmeServer,
    describe,
    expect_ok,
    load_certs,
    run_client,
    san_names,
    tls_handshake,
    verify_chain,
)
from integration.conftest import require_program

pytestmark = pytest.mark.integration


def certbot_program() -> str:
    """The certbot installed next to this Python (the `test` extra), on PATH or not."""
    return require_program(str(Path(sys.executable).parent / "certbot"))


class Certbot:
    def __init__(self, acme: AcmeServer, home: Path) -> None:
        self.acme = acme
        self.program = certbot_program()
        self.home = home
        self.dirs = []
        for name in ("config", "work", "logs"):
            (home / name).mkdir(parents=True, exist_ok=True)
            self.dirs += [f"--{name}-dir", str(home / name)]
        self.env = {"REQUESTS_CA_BUNDLE": str(acme.root_cert)}

    @property
    def live(self) -> Path:
        return self.home / "config" / "live" / NAMES[0]

    def __call__(self, *args: str, prefix: Sequence[str] = ()
                 ) -> tuple[subprocess.CompletedProcess[str], float]:
        """certbot ARGS; ``prefix``: a program certbot runs under (faketime ...)."""
        argv = [*prefix, self.program, *args, *self.dirs, "--non-interactive"]
        return run_client(argv, cwd=self.home, env=self.env, acme=self.acme)


def check_lineage(certbot: Certbot, root: Path) -> int:
    """The live lineage verifies with openssl and in a handshake; the leaf's serial."""
    live = certbot.live
    leaf = load_certs(live / "cert.pem")[0]
    assert san_names(leaf) == set(NAMES)
    verify_chain(root, live / "cert.pem", live / "chain.pem")
    seen = tls_handshake(live / "fullchain.pem", live / "privkey.pem", root)
    assert seen.serial_number == leaf.serial_number
    seen_api = tls_handshake(live / "fullchain.pem", live / "privkey.pem", root, NAMES[1])
    assert seen_api.serial_number == leaf.serial_number
    return leaf.serial_number


def test_certonly_renew_revoke(acme_server: AcmeServer, tmp_path: Path) -> None:
    certbot = Certbot(acme_server, tmp_path / "certbot")
    server = ["--server", acme_server.directory]
    standalone = [
        "--standalone",
        "--http-01-port",
        str(acme_server.http01_port),
        "--http-01-address",
        "127.0.0.1",
    ]
    domains = [arg for name in NAMES for arg in ("-d", name)]

    result, elapsed = certbot(
        "certonly",
        *standalone,
        *server,
        *domains,
        "--agree-tos",
        "--register-unsafely-without-email",
    )
    print(f"\ncertbot certonly (new account, 2 names): {elapsed:.2f} s")
    expect_ok(result, acme_server)
    first = check_lineage(certbot, acme_server.root_cert)

    result, elapsed = certbot("renew", "--force-renewal", "--no-random-sleep-on-renew")
    print(f"certbot renew --force-renewal: {elapsed:.2f} s")
    expect_ok(result, acme_server)
    second = check_lineage(certbot, acme_server.root_cert)
    assert second != first, "renewal must give a new certificate"

    revoke = [
        "revoke",
        *server,
        "--cert-path",
        str(certbot.live / "cert.pem"),
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
    ]
    result, _ = certbot(*revoke)
    expect_ok(result, acme_server)

    result, _ = certbot(*revoke)
    assert result.returncode != 0, describe(result, acme_server)
    output = (result.stdout + result.stderr).lower()
    assert "already revoked" in output or "alreadyrevoked" in output, describe(result, acme_server)
