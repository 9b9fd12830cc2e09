"""tls-alpn-01 (RFC 8737) with lego against a live `acme-ca serve`.

lego answers with its own TLS server (`--tls --tls.port 127.0.0.1:<P>`, ALPN
acme-tls/1); the server's [validation] tlsalpn01_port is P and its hosts table sends
web.bluerobin.local to 127.0.0.1. No other challenge is answered, so the certificate
can only come from tls-alpn-01. It is checked with openssl and in a TLS handshake.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.clients import (
    AcmeServer,
    expect_ok,
    load_certs,
    run_client,
    san_names,
    split_chain,
    tls_handshake,
    verify_chain,
)
from integration.conftest import require_program, serving_acme_validation

pytestmark = pytest.mark.integration

DOMAIN = "web.bluerobin.local"


@pytest.fixture
def acme_tlsalpn(tmp_path: Path) -> Iterator[tuple[AcmeServer, int]]:
    """The server and the port it connects to for tls-alpn-01 (where lego listens)."""
    with socket.socket() as held:  # held while the server picks its own port
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        validation = f'tlsalpn01_port = {port}\nhosts = {{ "{DOMAIN}" = "127.0.0.1" }}'
        with serving_acme_validation(tmp_path / "acme-ca", validation) as acme:
            held.close()  # lego listens there
            yield acme, port


def test_lego_tls_alpn(acme_tlsalpn: tuple[AcmeServer, int], tmp_path: Path) -> None:
    acme, port = acme_tlsalpn
    home = tmp_path / "lego"
    home.mkdir(parents=True, exist_ok=True)
    argv = [require_program("lego"), "--server", acme.directory, "--accept-tos"]
    argv += ["--email", "admin@bluerobin.local", "--path", str(home), "--domains", DOMAIN]
    argv += ["--tls", "--tls.port", f"127.0.0.1:{port}", "run"]
    env = {"LEGO_CA_CERTIFICATES": str(acme.root_cert)}
    result, elapsed = run_client(argv, cwd=home, env=env, acme=acme)
    print(f"\nlego run --tls (1 name): {elapsed:.2f} s")
    expect_ok(result, acme)
    bundle = home / "certificates" / f"{DOMAIN}.crt"
    leaf = load_certs(bundle)[0]
    assert san_names(leaf) == {DOMAIN}
    cert, chain = split_chain(bundle.read_bytes(), tmp_path)
    verify_chain(acme.root_cert, cert, chain)
    key = home / "certificates" / f"{DOMAIN}.key"
    seen = tls_handshake(bundle, key, acme.root_cert, DOMAIN)
    assert seen.serial_number == leaf.serial_number
