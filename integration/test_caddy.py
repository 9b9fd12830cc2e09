"""Caddy (the Debian package, /usr/bin/caddy) as an ACME client of a live `acme-ca serve`.

The Caddyfile's global options are the README's (acme_ca, acme_ca_root) plus what a
test needs: its own loopback ports, no admin endpoint, storage in tmp. The server's
[validation] sends web.bluerobin.local to 127.0.0.1 and connects to Caddy's http_port for
http-01 and to its https_port for tls-alpn-01, so Caddy may use either challenge. The
test waits until Caddy serves the site over HTTPS with a certificate that chains to
acme-ca's root through its intermediate.

Caddy 2.6 gives names that cannot have a public certificate (.local, .internal, IPs)
to its internal CA even when the global acme_ca is set; the site's `tls { issuer acme }`
makes acme-ca (with the global acme_ca and acme_ca_root) its issuer.
"""

from __future__ import annotations

import http.client
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from integration.clients import AcmeServer, load_certs, san_names, split_chain, verify_chain
from integration.conftest import (
    free_port,
    https_get,
    require_program,
    serving_acme_validation,
    stop_process,
)

pytestmark = pytest.mark.integration

DOMAIN = "web.bluerobin.local"
BODY = b"hello from caddy"
DEADLINE = 60.0  # seconds from Caddy's start to a good HTTPS answer


def distinct_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture
def acme_for_caddy(tmp_path: Path) -> Iterator[tuple[AcmeServer, int, int]]:
    """The server and Caddy's (http_port, https_port), where the server validates."""
    http_port, https_port = distinct_ports(2)
    validation = (
        f"http01_port = {http_port}\ntlsalpn01_port = {https_port}\n"
        f'allowed_networks = ["127.0.0.0/8"]\nhosts = {{ "{DOMAIN}" = "127.0.0.1" }}'
    )
    with serving_acme_validation(tmp_path / "acme-ca", validation) as acme:
        yield acme, http_port, https_port


def write_caddyfile(path: Path, acme: AcmeServer, http_port: int, https_port: int) -> Path:
    storage = path.parent / "caddy-data"
    path.write_text(
        "{\n"
        "\tadmin off\n"
        "\tdefault_bind 127.0.0.1\n"
        f"\thttp_port {http_port}\n"
        f"\thttps_port {https_port}\n"
        f"\tacme_ca {acme.directory}\n"
        f"\tacme_ca_root {acme.root_cert}\n"
        f"\tstorage file_system {storage}\n"
        "\temail admin@bluerobin.local\n"
        "}\n"
        f"{DOMAIN} {{\n"
        "\ttls {\n\t\tissuer acme\n\t}\n"  # else Caddy's internal CA: .local is not public
        f'\trespond "{BODY.decode()}"\n'
        "}\n",
        encoding="utf-8",
    )
    return path


def caddy_log(log: Path) -> str:
    return log.read_text(errors="replace")[-6000:]


def wait_for_site(
    caddy: subprocess.Popen[bytes], port: int, root: Path, log: Path, acme: AcmeServer
) -> bytes:
    """Poll until Caddy answers BODY over verified HTTPS; the DER of its certificate."""
    deadline = time.monotonic() + DEADLINE
    last: object = "no attempt"
    while time.monotonic() < deadline:
        if caddy.poll() is not None:
            pytest.fail(f"caddy exited {caddy.returncode}\n{caddy_log(log)}\n{acme.logs()}")
        try:
            resp = https_get(port, "/", root, hostname=DOMAIN)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            last = exc
        else:
            if resp.status == 200 and resp.body == BODY:
                return resp.peer_cert
            last = (resp.status, resp.body[:200])
        time.sleep(0.2)
    pytest.fail(f"no good answer within {DEADLINE} s: {last!r}\n{caddy_log(log)}\n{acme.logs()}")


def test_caddy_obtains_and_serves(
    acme_for_caddy: tuple[AcmeServer, int, int], tmp_path: Path
) -> None:
    acme, http_port, https_port = acme_for_caddy
    program = require_program("caddy")
    work = tmp_path / "caddy"
    work.mkdir()
    caddyfile = write_caddyfile(work / "Caddyfile", acme, http_port, https_port)
    env = {"HOME": str(work / "home"), "XDG_DATA_HOME": str(work / "xdg-data")}
    env["XDG_CONFIG_HOME"] = str(work / "xdg-config")
    argv = [program, "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
    log = work / "caddy.log"
    with log.open("wb") as out:
        start = time.monotonic()
        caddy = subprocess.Popen(argv, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            der = wait_for_site(caddy, https_port, acme.root_cert, log, acme)
            elapsed = time.monotonic() - start
        finally:
            status = stop_process(caddy)
    print(f"\ncaddy start to first good HTTPS answer: {elapsed:.2f} s (exit {status})")

    leaf = x509.load_der_x509_certificate(der)
    assert san_names(leaf) == {DOMAIN}
    intermediate = load_certs(acme.server.data_dir / "ca" / "intermediate-ca.crt")[0]
    assert leaf.issuer == intermediate.subject, leaf.issuer.rfc4514_string()
    # Caddy's stored bundle (leaf + acme-ca's chain) verifies to the root with openssl
    issuer_dir = f"127.0.0.1-{acme.server.port}-directory"
    stored = work / "caddy-data" / "certificates" / issuer_dir / DOMAIN / f"{DOMAIN}.crt"
    assert load_certs(stored)[0].serial_number == leaf.serial_number
    cert, chain = split_chain(stored.read_bytes(), tmp_path)
    verify_chain(acme.root_cert, cert, chain)
    # no other issuer was tried: no internal CA, no ZeroSSL
    text = log.read_text(errors="replace")
    assert f'"ca":"{acme.directory}"' in text, text
    assert "zerossl" not in text.lower() and "pki.ca.local" not in text, text
