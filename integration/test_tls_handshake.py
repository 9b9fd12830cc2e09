"""Leaves from `acme-ca sign-csr` in real TLS handshakes, and the intermediate's name constraints.

The hierarchy comes from `acme-ca init`; CSRs and the rogue certificate from openssl;
the handshakes are Python ssl servers (a thread on 127.0.0.1) and clients.
"""

from __future__ import annotations

import shlex
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import NamedTuple

import pytest

from integration.conftest import assert_user_error, client_context, require_program, run, run_cli

pytestmark = pytest.mark.integration

PASSPHRASE = "integration-root-pass"


class Ca(NamedTuple):
    data_dir: Path
    work: Path  # where the leaves are made

    @property
    def ca(self) -> Path:
        return self.data_dir / "ca"

    def path(self, name: str) -> Path:
        return self.ca / name


def sh(cmdline: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(cmdline)
    return run([require_program(argv[0]), *argv[1:]], cwd=cwd, check=check)


def make_ca(base: Path, *key_type: str) -> Ca:
    """`acme-ca init` (with `--key-type ...` when given) into base/data."""
    require_program("openssl")
    base.mkdir(parents=True, exist_ok=True)
    (base / "root.pass").write_text(PASSPHRASE + "\n")
    data_dir = base / "data"
    args = ["--data-dir", str(data_dir), "init", "--passphrase-file", "root.pass", *key_type]
    run_cli(*args, cwd=base)
    (base / "work").mkdir()
    return Ca(data_dir, base / "work")


def make_csr(ca: Ca, stem: str, name: str) -> Path:
    """The ECDSA P-256 CSR with a SAN, as an operator makes one with openssl."""
    sh(
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        f"-keyout {stem}.key -out {stem}.csr -subj /CN={name} "
        f"-addext subjectAltName=DNS:{name}",
        ca.work,
    )
    return ca.work / f"{stem}.csr"


def sign(ca: Ca, stem: str, name: str, profile: str = "server") -> tuple[Path, Path, Path]:
    """`acme-ca sign-csr --full-chain`: (leaf, leaf+intermediate, key)."""
    csr = make_csr(ca, stem, name)
    args = ["--data-dir", str(ca.data_dir), "sign-csr", str(csr), "--profile", profile]
    run_cli(*args, "--full-chain", "--out", f"{stem}.fullchain.pem", cwd=ca.work)
    end = b"-----END CERTIFICATE-----\n"
    leaf, intermediate, rest = (ca.work / f"{stem}.fullchain.pem").read_bytes().split(end)
    assert intermediate + end == ca.path("intermediate-ca.crt").read_bytes() and not rest
    (ca.work / f"{stem}.crt").write_bytes(leaf + end)
    return ca.work / f"{stem}.crt", ca.work / f"{stem}.fullchain.pem", ca.work / f"{stem}.key"


@pytest.fixture(scope="module")
def ec_ca(tmp_path_factory: pytest.TempPathFactory) -> Ca:
    return make_ca(tmp_path_factory.mktemp("ec"), "--key-type", "ec-p384")


@pytest.fixture(scope="module")
def web(ec_ca: Ca) -> tuple[Path, Path, Path]:
    return sign(ec_ca, "web", "web.bluerobin.local")


class TlsServer:
    """One TLS connection on 127.0.0.1 in a thread: handshake, then echo one message."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(15)
        self.port = self.listener.getsockname()[1]
        self.error: BaseException | None = None
        self.peer: dict[str, object] | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(15)
            with self.context.wrap_socket(conn, server_side=True) as tls:
                self.peer = tls.getpeercert()  # type: ignore[assignment]
                tls.sendall(b"echo:" + tls.recv(64))
        except (OSError, ssl.SSLError) as exc:
            self.error = exc

    def __enter__(self) -> TlsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=15)
        self.listener.close()
        assert not self.thread.is_alive()


def server_context(fullchain: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(fullchain, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca))
    return context


def talk(port: int, root: Path, hostname: str, cert: tuple[Path, Path] | None = None) -> bytes:
    """Handshake as a client trusting only `root`, checking `hostname`; send, read the echo."""
    context = client_context(root)
    if cert is not None:
        context.load_cert_chain(*cert)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        tls.sendall(b"ping")
        return tls.recv(64)


def check_leaf_and_handshake(ca: Ca, web: tuple[Path, Path, Path]) -> None:
    leaf, fullchain, key = web
    chain, root, inter = (
        ca.path("ca-chain.pem"),
        ca.path("root-ca.crt"),
        ca.path("intermediate-ca.crt"),
    )
    assert sh(f"openssl verify -CAfile {chain} {leaf}", ca.work).stdout.strip().endswith(": OK")
    untrusted = sh(f"openssl verify -CAfile {root} -untrusted {inter} {leaf}", ca.work)
    assert untrusted.stdout.strip().endswith(": OK")
    with TlsServer(server_context(fullchain, key)) as server:
        assert talk(server.port, root, "web.bluerobin.local") == b"echo:ping"
    assert server.error is None


def test_server_leaf_verifies_and_handshakes(ec_ca: Ca, web: tuple[Path, Path, Path]) -> None:
    check_leaf_and_handshake(ec_ca, web)


def test_default_rsa4096_hierarchy(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    root = sh(f"openssl x509 -in {ca.path('root-ca.crt')} -noout -text", tmp_path).stdout
    assert "Public-Key: (4096 bit)" in root
    check_leaf_and_handshake(ca, sign(ca, "web", "web.bluerobin.local"))


def test_hostname_mismatch_rejected(ec_ca: Ca, web: tuple[Path, Path, Path]) -> None:
    _, fullchain, key = web
    with (
        TlsServer(server_context(fullchain, key)) as server,
        pytest.raises(ssl.SSLCertVerificationError, match="match"),
    ):
        talk(server.port, ec_ca.path("root-ca.crt"), "db.bluerobin.local")
    assert server.error is not None


def test_mtls_client_profile_accepted(ec_ca: Ca, web: tuple[Path, Path, Path]) -> None:
    _, fullchain, key = web
    _, client_chain, client_key = sign(ec_ca, "worker", "worker.bluerobin.local", "client")
    root = ec_ca.path("root-ca.crt")
    with TlsServer(server_context(fullchain, key, client_ca=root)) as server:
        reply = talk(server.port, root, "web.bluerobin.local", (client_chain, client_key))
    assert reply == b"echo:ping", server.error
    assert server.peer is not None
    assert ("DNS", "worker.bluerobin.local") in server.peer["subjectAltName"]  # type: ignore[operator]


def test_mtls_server_profile_refused_as_client(ec_ca: Ca, web: tuple[Path, Path, Path]) -> None:
    _, fullchain, key = web
    _, svc_chain, svc_key = sign(ec_ca, "svc", "svc.bluerobin.local", "server")
    root = ec_ca.path("root-ca.crt")
    with TlsServer(server_context(fullchain, key, client_ca=root)) as server:
        try:  # TLS 1.3: the client learns of the refusal on its first read
            reply: bytes | None = talk(
                server.port, root, "web.bluerobin.local", (svc_chain, svc_key)
            )
        except (ssl.SSLError, OSError):
            reply = None
    assert reply in (None, b"")
    assert isinstance(server.error, ssl.SSLCertVerificationError)
    assert "certificate purpose" in str(server.error)  # clientAuth missing from its EKU


def rogue_leaf(ca: Ca, stem: str, name: str) -> Path:
    """Signed directly with the intermediate key by openssl: no acme-ca policy involved."""
    csr = make_csr(ca, stem, name)
    ext = ca.work / f"{stem}.ext"
    ext.write_text(
        f"basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:{name}\n"
    )
    sh(
        f"openssl x509 -req -in {csr} -CA {ca.path('intermediate-ca.crt')} "
        f"-CAkey {ca.path('intermediate-ca.key')} -CAserial {stem}.srl -CAcreateserial "
        f"-days 30 -sha256 -extfile {ext} -out {stem}.crt",
        ca.work,
    )
    return ca.work / f"{stem}.crt"


def test_name_constraints_reject_rogue_leaf(ec_ca: Ca) -> None:
    chain = ec_ca.path("ca-chain.pem")
    inside = rogue_leaf(ec_ca, "inside", "inside.bluerobin.local")
    assert sh(f"openssl verify -CAfile {chain} {inside}", ec_ca.work).returncode == 0
    evil = rogue_leaf(ec_ca, "evil", "evil.example.com")
    result = sh(f"openssl verify -CAfile {chain} {evil}", ec_ca.work, check=False)
    assert result.returncode != 0
    assert "permitted subtree violation" in result.stdout + result.stderr


def test_sign_csr_refuses_name_outside_policy(ec_ca: Ca) -> None:
    csr = make_csr(ec_ca, "evil-csr", "evil.example.com")
    args = ["--data-dir", str(ec_ca.data_dir), "sign-csr", str(csr), "--out", "evil-csr.crt"]
    assert_user_error(run_cli(*args, cwd=ec_ca.work, check=False), "evil.example.com")
    assert not (ec_ca.work / "evil-csr.crt").exists()


def test_sign_csr_reports_the_validity_asked_for(ec_ca: Ca) -> None:
    # A regression test: it once printed '604799s' (a `now` with microseconds was subtracted).
    csr = make_csr(ec_ca, "report", "report.bluerobin.local")
    args = ["--data-dir", str(ec_ca.data_dir), "sign-csr", str(csr), "--validity", "7d"]
    result = run_cli(*args, "--out", "report.crt", cwd=ec_ca.work)
    assert ", 7d):" in result.stderr, result.stderr
