"""docs/services.md's NATS, end to end: a real nats-server, every certificate from ACME.

certbot (PyPI) gets the server's certificate (profile `server`) and a worker's
(profile `client`, clientAuth only) from a live `acme-ca serve` over http-01, as the
page's blocks say; nats-server runs the page's configuration (TLS, `verify: true`, our
root as its only CA) on a free loopback port; the page's worker (nats-py) publishes and
reads its message back. A worker without a certificate, and one presenting the
server's certificate (serverAuth only) as its client certificate, are refused in the
handshake, and nats-server says why (RFC 5280 4.2.1.12: Go's TLS checks clientAuth).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import nats
import nats.errors
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from bench.http01 import free_port
from integration.conftest import run, stop_process, until
from integration.services import Guide, serving_ca, substitute
from tests.required import require_program

pytestmark = pytest.mark.integration

SERVER_NAME = "nats.bluerobin.local"
WORKER = "worker1.bluerobin.local"


class Nats(NamedTuple):
    guide: Guide
    port: int
    log: Path

    def context(self, live: Path | None) -> ssl.SSLContext:
        """A worker's TLS: trusts the root; presents `live`'s certificate, if any."""
        tls = ssl.create_default_context(cafile=str(self.guide.root))
        if live is not None:
            tls.load_cert_chain(live / "fullchain.pem", live / "privkey.pem")
        return tls


def accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def nats_server(guide: Guide) -> Iterator[Nats]:
    """nats-server with the page's configuration on 127.0.0.1:<free port>; stopped by pid."""
    program = require_program("nats-server")
    port = free_port()
    config = guide.home / "nats-server.conf"
    config.write_text(substitute(guide.text("nats-server.conf"), "listen: 0.0.0.0:4222",
                                 f"listen: 127.0.0.1:{port}"), encoding="utf-8")
    log = guide.home / "nats-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([program, "-c", str(config)], stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        until(lambda: accepts(port) or process.poll() is not None, "nats-server listens")
        assert process.poll() is None, log.read_text()
        yield Nats(guide, port, log)
    finally:
        stop_process(process)


def eku(path: Path) -> list[x509.ObjectIdentifier]:
    leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
    return list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nats]:
    """The CA, both certificates through certbot as the page says, nats-server running."""
    home = tmp_path_factory.mktemp("nats")
    with serving_ca(home / "acme-ca") as acme:
        guide = Guide(acme, home)
        guide.sh("nats-server-certificate")
        guide.sh("nats-worker-certificate")
        with nats_server(guide) as server:
            yield server


def test_certificates_come_from_their_profiles(served: Nats) -> None:
    guide = served.guide
    assert eku(guide.live(SERVER_NAME) / "cert.pem") == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert eku(guide.live(WORKER) / "cert.pem") == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_worker_publishes_and_receives(served: Nats) -> None:
    script = served.guide.home / "worker.py"
    script.write_text(substitute(served.guide.text("nats-worker.py"),
                                 "tls://nats.bluerobin.local:4222",
                                 f"tls://127.0.0.1:{served.port}"), encoding="utf-8")
    try:
        result = run([sys.executable, script], cwd=served.guide.home, timeout=15)
    except subprocess.TimeoutExpired:  # nats-py reconnects until it is let in
        pytest.fail(f"the worker did not get in:\n{served.log.read_text(errors='replace')}")
    assert result.stdout == "received on jobs: resize image 42\n", result


async def connect(served: Nats, tls: ssl.SSLContext) -> None:
    """Connect, publish and read back, as the page's worker does; raises when refused."""
    nc = await nats.connect(f"tls://127.0.0.1:{served.port}", tls=tls,
                            tls_hostname=SERVER_NAME, allow_reconnect=False,
                            max_reconnect_attempts=0, connect_timeout=5)
    try:
        sub = await nc.subscribe("jobs")
        await nc.publish("jobs", b"x")
        await sub.next_msg(timeout=5)
    finally:
        await nc.close()


def refused(served: Nats, live: Path | None, reason: str) -> None:
    """The worker (presenting `live`'s certificate, if any) cannot connect, and
    nats-server logged `reason` for it."""
    before = served.log.read_text(errors="replace")
    with pytest.raises((OSError, nats.errors.Error)):  # ssl.SSLError is an OSError
        asyncio.run(connect(served, served.context(live)))

    def logged() -> bool:
        return reason in served.log.read_text(errors="replace")[len(before):]

    until(logged, f"nats-server logs {reason!r}")


def test_a_worker_without_a_certificate_is_refused(served: Nats) -> None:
    asyncio.run(connect(served, served.context(served.guide.live(WORKER))))  # the control
    refused(served, None, "client didn't provide a certificate")


def test_a_server_certificate_is_refused_as_a_client_certificate(served: Nats) -> None:
    refused(served, served.guide.live(SERVER_NAME), "incompatible key usage")
