"""lego (the Debian package, /usr/bin/lego) against a live `acme-ca serve`.

run, renew --days 99999 (forces a renewal), revoke. lego answers http-01 on
127.0.0.1:<http01_port>, where the server's [validation] hosts table sends the
test name. Each certificate is checked with openssl and in a TLS handshake.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from integration.clients import (
    NAMES,
    AcmeServer,
    expect_ok,
    load_certs,
    revoke_with_certificate_key,
    run_client,
    san_names,
    split_chain,
    tls_handshake,
    verify_chain,
)
from integration.conftest import require_program

pytestmark = pytest.mark.integration

DOMAIN = NAMES[0]


class Lego:
    def __init__(self, acme: AcmeServer, home: Path) -> None:
        self.acme = acme
        self.program = require_program("lego")
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.common = [
            "--server",
            acme.directory,
            "--accept-tos",
            "--email",
            "admin@bluerobin.local",
            "--domains",
            DOMAIN,
            "--path",
            str(home),
        ]
        self.http = ["--http", "--http.port", f"127.0.0.1:{acme.http01_port}"]
        self.env = {"LEGO_CA_CERTIFICATES": str(acme.root_cert)}

    def certificate(self, suffix: str) -> Path:
        return self.home / "certificates" / f"{DOMAIN}{suffix}"

    def __call__(
        self, command: str, *args: str, http: bool = True
    ) -> tuple[subprocess.CompletedProcess[str], float]:
        argv = [self.program, *self.common, *(self.http if http else []), command, *args]
        return run_client(argv, cwd=self.home, env=self.env, acme=self.acme)


def check_certificate(lego: Lego, root: Path, work: Path) -> int:
    """lego's bundle (leaf + issuer) verifies with openssl and in a handshake; the serial."""
    bundle = lego.certificate(".crt")
    certs = load_certs(bundle)
    leaf = certs[0]
    assert san_names(leaf) == {DOMAIN}
    work.mkdir(parents=True, exist_ok=True)
    cert, chain = split_chain(bundle.read_bytes(), work)
    verify_chain(root, cert, chain)
    verify_chain(root, cert, lego.certificate(".issuer.crt"))
    seen = tls_handshake(bundle, lego.certificate(".key"), root, DOMAIN)
    assert seen.serial_number == leaf.serial_number
    return leaf.serial_number


def test_run_renew_revoke(acme_server: AcmeServer, tmp_path: Path) -> None:
    lego = Lego(acme_server, tmp_path / "lego")

    result, elapsed = lego("run")
    print(f"\nlego run (new account, 1 name): {elapsed:.2f} s")
    expect_ok(result, acme_server)
    first = check_certificate(lego, acme_server.root_cert, tmp_path / "first")

    result, elapsed = lego("renew", "--days", "99999", "--no-random-sleep")
    print(f"lego renew --days 99999: {elapsed:.2f} s")
    expect_ok(result, acme_server)
    second = check_certificate(lego, acme_server.root_cert, tmp_path / "second")
    assert second != first, "renewal must give a new certificate"

    result, _ = lego("revoke", "--reason", "1", http=False)
    expect_ok(result, acme_server)
    assert "revoked" in (result.stdout + result.stderr).lower(), result.stderr

    # lego archived the files; the server has the certificate as revoked
    archived = sorted((lego.home / "archives").glob(f"*.{DOMAIN}.crt"))
    assert len(archived) == 1, archived
    key = archived[0].with_name(archived[0].name.removesuffix(".crt") + ".key")
    assert load_certs(archived[0])[0].serial_number == second
    assert revoke_with_certificate_key(acme_server, archived[0], key) == "alreadyRevoked"
