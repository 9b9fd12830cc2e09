"""The admin listener of a real `acme-ca serve` (issue 13 item 2): `acme-ca admin-cert`
makes a PKCS#12 (and PEM) that Python's ssl, curl and `openssl s_client` present over
mTLS to get /metrics; the counters move after a lego issuance; a client without a
certificate gets no answer; `acme-ca certs revoke` locks the operator out at once;
with `serve --workers 2` any worker answers the sum of both (prometheus-client's
multiprocess mode); a taken admin port is a one-line error."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from integration.clients import AcmeServer, expect_ok, renew_intermediate, serving_acme
from integration.conftest import (
    _serving,
    clean_env,
    free_port,
    require_program,
    run,
    run_cli,
)
from integration.test_lego import Lego

pytestmark = pytest.mark.integration

PASSWORD = "correct horse admin"


class Admin(NamedTuple):
    acme: AcmeServer
    config: Path
    port: int
    p12: Path
    pem: Path
    serial: str

    def context(self, with_certificate: bool = True) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.acme.root_cert))
        if with_certificate:
            context.load_cert_chain(self.pem)
        return context

    def connect(self, *, with_certificate: bool = True) -> http.client.HTTPSConnection:
        """A keep-alive mTLS connection, the server verified as 127.0.0.1."""
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                           context=self.context(with_certificate))

    def get(self, path: str = "/metrics", *, with_certificate: bool = True,
            conn: http.client.HTTPSConnection | None = None) -> tuple[int, str]:
        """GET over ``conn``, else a fresh connection."""
        fresh = conn is None
        conn = conn or self.connect(with_certificate=with_certificate)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            if fresh:
                conn.close()


def admin_table(port: int) -> str:
    return f'\n[admin]\nlisten = "127.0.0.1:{port}"\n'


def make_admin(config: Path, cwd: Path, name: str) -> tuple[Path, Path, str]:
    """`acme-ca admin-cert` twice for ``name``: a PKCS#12 under PASSWORD, and --pem;
    (p12, pem, the PEM certificate's serial)."""
    password = cwd / "p12.pass"
    password.write_text(PASSWORD + "\n")
    p12, pem = cwd / f"{name}.p12", cwd / f"{name}.pem"
    run_cli("--config", config, "admin-cert", "--name", name, "--out", p12,
            "--password-file", password, cwd=cwd)
    made = run_cli("--config", config, "admin-cert", "--name", name, "--out", pem, "--pem",
                   cwd=cwd)
    serial = re.search(r"serial ([0-9a-f]+)", made.stdout)
    assert serial, made.stdout
    return p12, pem, serial.group(1)


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Admin]:
    port = free_port()
    with serving_acme(tmp_path / "acme-ca", admin_table(port)) as acme:
        config = tmp_path / "acme-ca" / "acme-ca.toml"
        assert f"admin:            https://127.0.0.1:{port}/metrics" in acme.server.log()
        p12, pem, serial = make_admin(config, tmp_path, "alice")
        yield Admin(acme, config, port, p12, pem, serial)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus's text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_over_mtls_move_after_a_lego_issuance(admin: Admin, tmp_path: Path) -> None:
    """Issue 13 item 2: issuances by profile and key type, validations by challenge
    type and outcome, request latency per endpoint, store latency, CA expiry."""
    status, before = admin.get()
    assert status == 200, before
    assert sample(before, "acme_ca_ca_certificate_expiry_timestamp_seconds", role="root") > 0
    lego = Lego(admin.acme, tmp_path / "lego")
    result, _ = lego("run")
    expect_ok(result, admin.acme)
    status, after = admin.get()
    assert status == 200
    issued = {"profile": "server", "key_type": "ecdsa-p256"}
    assert sample(after, "acme_ca_issuances_total", **issued) == \
        sample(before, "acme_ca_issuances_total", **issued) + 1
    assert sample(after, "acme_ca_validations_total", challenge_type="http-01",
                  outcome="valid") == 1
    assert sample(after, "acme_ca_request_duration_seconds_count",
                  endpoint="/acme/new-order") == 1
    assert sample(after, "acme_ca_store_operation_duration_seconds_count",
                  operation="get_certificate") >= 2  # the guard's, once per scrape
    assert sample(after, "acme_ca_validations_in_flight", challenge_type="http-01") == 0


def test_curl_and_openssl_present_the_admin_certificate(admin: Admin) -> None:
    """A real handshake with curl (the PKCS#12 and the PEM) and `openssl s_client`."""
    curl = require_program("curl")
    openssl = require_program("openssl")
    base = ["--silent", "--show-error", "--cacert", str(admin.acme.root_cert)]
    url = f"https://127.0.0.1:{admin.port}/metrics"
    for cert in (["--cert-type", "P12", "--cert", f"{admin.p12}:{PASSWORD}"],
                 ["--cert", str(admin.pem)]):
        result = run([curl, *base, *cert, url], cwd=admin.config.parent)
        assert "acme_ca_issuances_total" in result.stdout
    refused = run([curl, *base, url], cwd=admin.config.parent, check=False)
    assert refused.returncode != 0 and "acme_ca" not in refused.stdout

    shown = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{admin.port}", "-CAfile",
         str(admin.acme.root_cert), "-cert", str(admin.pem), "-key", str(admin.pem),
         "-verify_return_error", "-quiet"],
        input="GET /metrics HTTP/1.0\r\n\r\n", capture_output=True, text=True, timeout=30,
        check=False)
    assert shown.stdout.startswith("HTTP/1.0 200") or shown.stdout.startswith("HTTP/1.1 200"), \
        shown.stdout[:200] + shown.stderr


def test_no_client_certificate_gets_no_answer(admin: Admin) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        admin.get(with_certificate=False)


def test_revoking_the_admin_certificate_locks_the_operator_out(admin: Admin) -> None:
    """Brief: `acme-ca certs revoke SERIAL` locks the operator out at once, on the
    connection already open too (the guard asks the store on every request)."""
    conn = admin.connect()
    try:
        assert admin.get(conn=conn)[0] == 200
        tls = conn.sock
        run_cli("--config", admin.config, "certs", "revoke", admin.serial,
                cwd=admin.config.parent)
        status, body = admin.get(conn=conn)
        assert conn.sock is tls  # the same TLS session, kept alive
    finally:
        conn.close()
    assert status == 403
    assert body == f"403 Forbidden: the admin certificate {admin.serial} is revoked\n"
    assert admin.get()[0] == 403


def test_after_an_intermediate_renewal_both_intermediates_admin_certificates_get_in(
        admin: Admin, tmp_path: Path) -> None:
    """The listener trusts the CA's intermediates, current and archived: after `acme-ca
    intermediate renew` and SIGHUP, an admin certificate of the new intermediate gets
    in, and the one the archived intermediate signed still does."""
    renew_intermediate(admin.acme)
    (tmp_path / "new").mkdir()
    _, pem, serial = make_admin(admin.config, tmp_path / "new", "bob")
    assert serial != admin.serial
    assert admin._replace(pem=pem).get()[0] == 200
    assert admin.get()[0] == 200


def test_two_workers_answer_the_sum(tmp_path: Path) -> None:
    """`serve --workers 2`: prometheus-client's multiprocess mode, in a directory of the
    run's own under data_dir/metrics (review F5), removed at stop; the directory of a
    run that ended is removed at start; whichever worker answers counts both."""
    port, admin_port = free_port(), free_port()
    workdir = tmp_path / "acme-ca"
    workdir.mkdir()
    from integration.clients import write_config

    config = write_config(workdir / "acme-ca.toml", data_dir=workdir / "data", port=port,
                          http01_port=free_port(), extra=admin_table(admin_port))
    metrics = workdir / "data" / "metrics"
    ended = metrics / "999999-ended"  # no process holds its lock
    ended.mkdir(parents=True)
    (ended / "counter_1.db").write_bytes(b"left by an earlier run")
    with _serving(["--config", str(config), "serve", "--workers", "2"], workdir,
                  workdir / "data", port) as server:
        p12, pem, serial = make_admin(config, tmp_path, "alice")
        admin = Admin(AcmeServer(server, 0), config, admin_port, p12, pem, serial)
        for _ in range(30):  # new connections: the kernel spreads them over both workers
            assert server.get("/directory").status == 200
        (run,) = metrics.iterdir()
        assert run.name.startswith(f"{server.process.pid}-")
        pids = {p.stem.rsplit("_", 1)[1] for p in run.glob("histogram_*.db")}
        assert len(pids) == 2, sorted(run.iterdir())
        for _ in range(6):
            status, body = admin.get()
            assert status == 200
            assert sample(body, "acme_ca_request_duration_seconds_count",
                          endpoint="/directory") == 30
    assert list(metrics.iterdir()) == []


def test_an_inherited_multiprocess_directory_is_ignored(tmp_path: Path) -> None:
    """Review F4: with one worker, a PROMETHEUS_MULTIPROC_DIR in serve's environment
    (another program's) is neither shown on /metrics nor written to."""
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    subprocess.run([sys.executable, "-c", "from prometheus_client import Counter; "
                    "Counter('foreign_series', 'x').inc()"], check=True,
                   env=clean_env({"PROMETHEUS_MULTIPROC_DIR": str(foreign)}))
    files = sorted(foreign.iterdir())
    assert files
    port, admin_port = free_port(), free_port()
    workdir = tmp_path / "acme-ca"
    workdir.mkdir()
    from integration.clients import write_config

    config = write_config(workdir / "acme-ca.toml", data_dir=workdir / "data", port=port,
                          http01_port=free_port(), extra=admin_table(admin_port))
    with _serving(["--config", str(config), "serve"], workdir, workdir / "data", port,
                  env=clean_env({"PROMETHEUS_MULTIPROC_DIR": str(foreign)})) as server:
        p12, pem, serial = make_admin(config, tmp_path, "alice")
        admin = Admin(AcmeServer(server, 0), config, admin_port, p12, pem, serial)
        assert server.get("/directory").status == 200
        status, body = admin.get()
        assert status == 200
        assert "foreign_series" not in body
        assert sample(body, "acme_ca_request_duration_seconds_count",
                      endpoint="/directory") == 1
    assert sorted(foreign.iterdir()) == files


def test_a_taken_admin_port_is_one_line(tmp_path: Path) -> None:
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        from integration.clients import write_config

        config = write_config(tmp_path / "acme-ca.toml", data_dir=tmp_path / "data",
                              port=free_port(), http01_port=free_port(),
                              extra=admin_table(port))
        result = run_cli("--config", config, "serve", cwd=tmp_path, check=False)
    # One error line, said before any background work started (a fresh data directory
    # also logs the server certificate it issued first).
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("acme-ca:")]
    assert errors == [result.stderr.strip().splitlines()[-1]]
    assert errors[0].startswith(f"acme-ca: error: cannot listen on 127.0.0.1:{port} "
                                "([admin] listen)")
    assert "background lease" not in result.stderr
