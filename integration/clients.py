"""Helpers for the ACME client tests (certbot, lego, certbot's `acme` library).

`serving_acme` starts `acme-ca serve` with a configuration file whose http-01
validation goes to 127.0.0.1:<a free port> for the test names, so a client can
answer challenges on that port without root and without DNS. `verify_chain` and
`tls_handshake` check what a client obtained, with openssl and with a real TLS
handshake (Python ssl, trusting only the root).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import josepy as jose
import pytest
from acme import client, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from integration.conftest import (
    Server,
    clean_env,
    free_port,
    require_program,
    revocation_table,
    run_cli,
    serving_config,
    until,
)

NAMES = ("web.bluerobin.local", "api.bluerobin.local")
CLIENT_TIMEOUT = 60  # seconds, for every client subprocess


class AcmeServer(NamedTuple):
    server: Server
    http01_port: int  # where the server connects for http-01: clients listen here

    @property
    def directory(self) -> str:
        return f"{self.server.base_url}/directory"

    @property
    def root_cert(self) -> Path:
        return self.server.root_cert

    def logs(self) -> str:
        out, err = self.server.log(), self.server.log("stderr")
        return f"--- serve stdout\n{out}\n--- serve stderr\n{err}"


def write_config(path: Path, *, data_dir: Path, port: int, http01_port: int,
                 extra: str = "", ocsp: bool = False) -> Path:
    """The server's TOML; ``extra``: more tables, appended as they are ([limits] ...);
    ``ocsp``: [revocation] ocsp = true."""
    hosts = ", ".join(f'"{name}" = "127.0.0.1"' for name in NAMES)
    path.write_text(
        "[server]\n"
        f'listen = "127.0.0.1:{port}"\n'
        'hostname = "localhost"\n'
        f"data_dir = {json.dumps(str(data_dir))}\n"
        "\n[policy]\n"
        'allowed_domains = ["bluerobin.local"]\n'
        f"{revocation_table(ocsp=ocsp)}"
        "\n[validation]\n"
        f"http01_port = {http01_port}\n"
        'allowed_networks = ["127.0.0.0/8"]\n'
        f"hosts = {{{hosts}}}\n{extra}",
        encoding="utf-8",
    )
    return path


@contextlib.contextmanager
def serving_acme(workdir: Path, extra: str = "", *, ocsp: bool = False) -> Iterator[AcmeServer]:
    """`acme-ca serve --config ...` in `workdir`, ready; stopped by pid afterwards.

    http-01 goes to 127.0.0.1:<http01_port> for NAMES ([validation] hosts), and only
    loopback may be connected to ([validation] allowed_networks). ``extra``: TOML
    tables appended to the file (``"[acme]
eab_required = true
"``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    port, http01_port = free_port(), free_port()
    while http01_port == port:
        http01_port = free_port()
    config = write_config(
        workdir / "acme-ca.toml", data_dir=data_dir, port=port, http01_port=http01_port,
        extra=extra, ocsp=ocsp,
    )
    with serving_config(config, data_dir, port) as server:
        yield AcmeServer(server, http01_port)


def run_client(
    argv: Sequence[str | Path], *, cwd: Path, env: dict[str, str], acme: AcmeServer
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run an ACME client (60 s at most); its result and wall time. Never fails by itself."""
    start = time.monotonic()
    try:
        result = subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        command = " ".join(map(str, argv))
        pytest.fail(f"{command} took over {CLIENT_TIMEOUT} s: {exc}\n{acme.logs()}")
    return result, time.monotonic() - start


def describe(result: subprocess.CompletedProcess[str], acme: AcmeServer) -> str:
    return (
        f"{' '.join(map(str, result.args))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n{acme.logs()}"
    )


def expect_ok(
    result: subprocess.CompletedProcess[str], acme: AcmeServer
) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        pytest.fail(describe(result, acme))
    return result


def load_certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def split_chain(fullchain_pem: bytes, directory: Path) -> tuple[Path, Path]:
    """Write the leaf and the rest of a PEM chain to cert.pem and chain.pem."""
    certs = x509.load_pem_x509_certificates(fullchain_pem)
    assert len(certs) >= 2, "the chain must hold the leaf and the intermediate"
    cert, chain = directory / "cert.pem", directory / "chain.pem"
    cert.write_bytes(certs[0].public_bytes(Encoding.PEM))
    chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs[1:]))
    return cert, chain


def san_names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName))


def verify_chain(root: Path, cert: Path, chain: Path) -> None:
    """`openssl verify -CAfile root -untrusted chain cert` says OK."""
    openssl = require_program("openssl")
    argv = [openssl, "verify", "-CAfile", str(root), "-untrusted", str(chain), str(cert)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.strip().endswith(": OK"), result.stdout


def tls_handshake(
    fullchain: Path, key: Path, root: Path, hostname: str = NAMES[0]
) -> x509.Certificate:
    """A Python TLS server with fullchain+key, a client trusting only `root`: the leaf seen."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(fullchain), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    errors: list[BaseException] = []

    def serve_one() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(10)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello\n")
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(root))
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname=hostname) as tls,
        ):
            assert tls.recv(16) == b"hello\n"
            der = tls.getpeercert(binary_form=True)
    finally:
        thread.join(timeout=15)
        listener.close()
    assert not errors, errors
    assert der is not None
    leaf = x509.load_der_x509_certificate(der)
    assert hostname in san_names(leaf)
    return leaf


def revoke_with_certificate_key(acme: AcmeServer, cert: Path, key: Path) -> str | None:
    """Revoke `cert` with a JWS signed by its own key (RFC 8555 7.6, no account): None when
    the server accepts, else the ACME error code (e.g. "alreadyRevoked")."""
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    jwk: jose.JWK
    if isinstance(private, ec.EllipticCurvePrivateKey):
        jwk = jose.JWKEC(key=private)
        alg = {256: jose.ES256, 384: jose.ES384, 521: jose.ES512}[private.curve.key_size]
    else:
        assert isinstance(private, rsa.RSAPrivateKey)
        jwk, alg = jose.JWKRSA(key=private), jose.RS256
    net = client.ClientNetwork(jwk, alg=alg, verify_ssl=str(acme.root_cert))
    directory = client.ClientV2.get_directory(acme.directory, net)
    try:
        client.ClientV2(directory, net).revoke(load_certs(cert)[0], 0)
    except messages.Error as error:
        return error.code or error.typ
    return None


def renew_intermediate(acme: AcmeServer) -> None:
    """`acme-ca intermediate renew` with the test root's passphrase, then SIGHUP; returns
    once the server serves the new chain."""
    server = acme.server
    old_chain = server.get("/roots/chain.pem").body
    passphrase = server.data_dir / "offline" / "root-ca.passphrase"
    config = server.data_dir.parent / "acme-ca.toml"
    run_cli("--config", config, "intermediate", "renew", "--passphrase-file", passphrase,
            cwd=config.parent)
    os.kill(server.process.pid, signal.SIGHUP)
    until(lambda: server.get("/roots/chain.pem").body != old_chain,
          "the server switched to the new intermediate")
