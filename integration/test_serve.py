"""`acme-ca serve` as a separate process on 127.0.0.1: bootstrap, reuse, SIGHUP reload, refusals."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from integration.conftest import (
    Server,
    assert_user_error,
    free_port,
    open_https,
    request,
    require_program,
    run,
    run_cli,
    until,
)

pytestmark = pytest.mark.integration

ONLINE_FILES = ("root-ca.crt", "intermediate-ca.crt", "intermediate-ca.key", "ca-chain.pem")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def first_cert(data: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(data)[0]


def sha256(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def serve_args(data_dir: Path, port: int) -> list[str]:
    return ["--data-dir", str(data_dir), "serve", "--listen", f"127.0.0.1:{port}",
            "--http-listen", f"127.0.0.1:{free_port()}"]


def test_first_start_bootstraps_a_ca(server: Server) -> None:
    data = server.data_dir
    out = server.log("stdout")
    assert "No CA found" in out
    root_key = data / "offline" / "root-ca.key"
    assert f"Root key: {root_key}" in out
    assert "belongs offline" in out
    for folder in ("ca", "offline", "tls"):
        assert mode(data / folder) == 0o700, folder
    for key in ("offline/root-ca.key", "offline/root-ca.passphrase", "ca/intermediate-ca.key"):
        assert mode(data / key) == 0o600, key
    assert mode(data / "tls" / "server.key") == 0o600
    assert b"ENCRYPTED" in root_key.read_bytes()
    for name in ONLINE_FILES:
        assert (data / "ca" / name).is_file(), name

    health = server.get("/health")  # verified against root-ca.crt, as IP 127.0.0.1
    assert health.status == 200
    assert json.loads(health.body)["status"] == "ok"
    chain = server.get("/roots/chain.pem")
    assert chain.status == 200
    assert chain.headers["Content-Type"].startswith("application/pem-certificate-chain")
    assert chain.body == (data / "ca" / "ca-chain.pem").read_bytes()
    assert server.get("/roots/root.pem").body == server.root_cert.read_bytes()


def test_server_certificate_chains_to_the_root(server: Server) -> None:
    openssl = require_program("openssl")
    peer = x509.load_der_x509_certificate(server.get("/health").peer_cert)
    intermediate = first_cert((server.data_dir / "ca" / "intermediate-ca.crt").read_bytes())
    peer.verify_directly_issued_by(intermediate)
    san = peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # hostname "localhost" is a single label: the certificate names the listen address
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == []
    # And as openssl sees it: only the root trusted, the server sends the intermediate.
    result = run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{server.port}", "-verify_ip",
         "127.0.0.1", "-CAfile", server.root_cert, "-verify_return_error"],
        cwd=server.data_dir.parent, input="", timeout=30,
    )  # fmt: skip
    assert "Verify return code: 0 (ok)" in result.stdout


def test_second_start_reuses_ca_and_tls_certificate(
    serve_factory: Callable[..., Server], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = serve_factory(data_dir)
    root_before = first.get("/roots/root.pem").body
    tls_before = first.get("/health").peer_cert
    files_before = {n: (data_dir / "ca" / n).read_bytes() for n in ONLINE_FILES}
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=15) == 0

    second = serve_factory(data_dir)
    assert "No CA found" not in second.log("stdout")
    assert sha256(first_cert(second.get("/roots/root.pem").body)) == sha256(first_cert(root_before))
    assert second.get("/health").peer_cert == tls_before
    assert {n: (data_dir / "ca" / n).read_bytes() for n in ONLINE_FILES} == files_before


def test_a_restart_voids_no_nonce(
    serve_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """RFC 8555 6.5 and issue 10: restarting a server (or one replica) voids nobody's
    nonces; they expire instead. What a killed process committed to the nonce file is in
    the kernel's cache; only another boot makes the file forget them (a power loss may
    have lost a consumption: tests/store/sqlite/test_nonce_file.py)."""
    data_dir = tmp_path / "data"
    first = serve_factory(data_dir)
    nonce = first.get("/acme/new-nonce").headers["Replay-Nonce"]
    nonces = data_dir / "acme-ca-nonces.db"

    def stored() -> set[str]:
        with contextlib.closing(sqlite3.connect(nonces)) as conn:
            return {row[0] for row in conn.execute("SELECT nonce FROM nonces")}

    assert nonce in stored()
    first.process.send_signal(signal.SIGKILL)  # no clean shutdown
    first.process.wait(timeout=15)
    second = serve_factory(data_dir)
    assert second.get("/acme/new-nonce").headers["Replay-Nonce"] in stored()
    assert nonce in stored()


def test_every_start_warns_while_the_root_key_is_in_the_data_directory(
    serve_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """The root key belongs offline (DESIGN: only init and renew open it): `serve` says so
    in one line at every start while offline/root-ca.key is beside it, and not once it
    has been moved away."""
    data_dir = tmp_path / "data"
    root_key = data_dir / "offline" / "root-ca.key"
    first = serve_factory(data_dir)  # bootstraps, so the root key is there
    warnings = [line for line in first.log("stderr").splitlines() if str(root_key) in line]
    assert len(warnings) == 1, first.log("stderr")
    assert "WARNING" in warnings[0] and "move it offline" in warnings[0]
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=15) == 0

    second = serve_factory(data_dir)  # still there: said again
    assert [line for line in second.log("stderr").splitlines() if str(root_key) in line]
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=15) == 0

    shutil.move(data_dir / "offline", tmp_path / "usb-stick")
    third = serve_factory(data_dir)
    assert "root key" not in third.log("stderr") + third.log("stdout")
    assert third.get("/health").status == 200


class HealthPoller(threading.Thread):
    """GET /health on a new verified connection, again and again, until stopped."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.done = threading.Event()
        self.answers = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.done.is_set():
            try:
                resp = self.server.get("/health")
                if resp.status == 200 and json.loads(resp.body)["status"] == "ok":
                    self.answers += 1
                else:
                    self.failures.append(f"HTTP {resp.status}: {resp.body[:200]!r}")
            except Exception as exc:
                self.failures.append(repr(exc))
            time.sleep(0.02)


def test_renew_then_sighup_switches_without_downtime(server: Server) -> None:
    data = server.data_dir
    old_chain = server.get("/roots/chain.pem").body
    old_tls = server.get("/health").peer_cert
    kept = open_https(server.port, server.root_cert)  # a connection from before the reload
    assert request(kept, "/health").status == 200
    poller = HealthPoller(server)
    poller.start()
    try:
        passphrase = data / "offline" / "root-ca.passphrase"
        renew = ["--data-dir", str(data), "intermediate", "renew", "--passphrase-file", passphrase]
        result = run_cli(*renew, cwd=data.parent)
        assert "SIGHUP" in result.stdout
        new_chain = (data / "ca" / "ca-chain.pem").read_bytes()
        assert new_chain != old_chain
        assert server.get("/roots/chain.pem").body == old_chain  # nothing changes before HUP
        os.kill(server.process.pid, signal.SIGHUP)
        new_intermediate = first_cert(new_chain)
        seen = {"chain": old_chain, "tls": old_tls}

        def switched_over() -> bool:
            seen["chain"] = server.get("/roots/chain.pem").body
            seen["tls"] = server.get("/health").peer_cert
            return seen["chain"] == new_chain and seen["tls"] != old_tls

        until(switched_over, "the new intermediate and TLS certificate are served", 10)
        switched = poller.answers  # keep polling /health for five answers after the switch
        until(lambda: poller.answers >= switched + 5, "/health answered 5 times after the switch")
    finally:
        poller.done.set()
        poller.join(timeout=15)
    served, tls = seen["chain"], seen["tls"]
    assert served == new_chain, "the new intermediate was not served within 10 s"
    assert tls != old_tls, "the server TLS certificate was not re-issued"
    x509.load_der_x509_certificate(tls).verify_directly_issued_by(new_intermediate)
    assert poller.failures == [], poller.failures
    assert poller.answers >= switched + 5, "/health did not answer after the switch"
    assert server.process.poll() is None
    # The connection opened before the reload still works, on the same TLS session.
    again = request(kept, "/roots/chain.pem")
    assert (again.status, again.body, again.peer_cert) == (200, new_chain, old_tls)
    kept.close()
    assert list((data / "ca" / "archive").glob("intermediate-ca.*.crt"))


def test_failed_reload_keeps_the_current_intermediate(server: Server) -> None:
    data = server.data_dir
    chain = server.get("/roots/chain.pem").body
    # A key that does not match the intermediate, as a botched manual copy would leave.
    shutil.copy(data / "tls" / "server.key", data / "ca" / "intermediate-ca.key")
    os.kill(server.process.pid, signal.SIGHUP)
    until(lambda: "reload failed" in server.log("stderr"), "the server logged the failed reload")
    assert "reload failed" in server.log("stderr")
    assert server.process.poll() is None
    assert server.get("/health").status == 200
    assert server.get("/roots/chain.pem").body == chain


def test_second_server_on_the_same_port_fails(server: Server) -> None:
    args = serve_args(server.data_dir, server.port)
    result = run_cli(*args, cwd=server.data_dir.parent, check=False, timeout=30)
    assert_user_error(result, "cannot listen", str(server.port))
    assert server.get("/health").status == 200  # the first one is unaffected


@pytest.mark.parametrize("missing", ONLINE_FILES)
def test_incomplete_ca_is_refused(missing: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (tmp_path / "root.pass").write_text("integration-root-pass\n")
    init = ["--data-dir", str(data_dir), "init", "--key-type", "ec-p384"]
    run_cli(*init, "--passphrase-file", "root.pass", cwd=tmp_path)
    (data_dir / "ca" / missing).unlink()
    shutil.rmtree(data_dir / "offline")  # as on a real server: the root key is elsewhere
    result = run_cli(*serve_args(data_dir, free_port()), cwd=tmp_path, check=False, timeout=30)
    assert_user_error(result, missing, "missing")
    assert not (data_dir / "ca" / missing).exists()  # nothing re-created behind our back


def test_an_unreadable_archived_key_that_still_signs_crls_stops_serve(
    serve_factory: Callable[..., Server], tmp_path: Path
) -> None:
    """RFC 5280 5.1.2.3 and 3.3: after `intermediate renew`, only the archived key can
    put the revocation of a certificate the old intermediate signed (here the server's
    own TLS certificate, still valid) on a CRL. Damaged, a SIGHUP reload keeps the
    intermediate it had, and a start is refused in one line naming the key file."""
    data_dir = tmp_path / "data"
    server = serve_factory(data_dir)
    passphrase = data_dir / "offline" / "root-ca.passphrase"
    run_cli("--data-dir", str(data_dir), "intermediate", "renew", "--passphrase-file",
            passphrase, cwd=data_dir.parent)
    chain = server.get("/roots/chain.pem").body
    (archived,) = (data_dir / "ca" / "archive").glob("intermediate-ca.*.key")
    archived.write_bytes(b"damaged")
    os.kill(server.process.pid, signal.SIGHUP)
    until(lambda: "reload failed" in server.log("stderr"), "the server logged the failed reload")
    assert str(archived) in server.log("stderr")
    assert server.get("/roots/chain.pem").body == chain
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=15) == 0
    result = run_cli(*serve_args(data_dir, free_port()), cwd=tmp_path, check=False, timeout=30)
    assert_user_error(result, str(archived))
