"""SIGTERM with a validation in flight, against a real `acme-ca serve` (issue 13 item 7).

The client's http-01 responder (a tiny server of the test's, on a free port that
[validation] http01_port and hosts point the CA at) answers slowly, so the validation
is still running when the server is told to stop:

- within ``[server] shutdown_timeout``: new connections are refused at once, the
  validation completes and is recorded valid, the process exits 0 well within the
  deadline, and the database has no challenge or order left processing (one process,
  and ``--workers 2``: the parent forwards SIGTERM);
- past it (a short ``shutdown_timeout``): the process exits 0 at the deadline, and
  what was cut is left processing for the next start, which finishes it (resumes the
  validation, ``ValidationSupervisor.resume_stopped``) with nothing processing after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import josepy as jose
import pytest
from acme import challenges, crypto_util, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.domain.models import ChallengeStatus
from acme_ca.store import SqliteStore
from integration.clients import NAMES, AcmeServer, write_config
from integration.conftest import free_port, serving_config, until
from integration.test_acme_library import connect

pytestmark = pytest.mark.integration

REFUSED_WITHIN = 1.0  # seconds after SIGTERM: the listener is closed


class SlowResponder:
    """http-01 answers (token -> key authorization) in ``delay`` seconds: the headers
    half way, the body at the end; ``asked`` is set when the CA's first request
    arrives."""

    def __init__(self, port: int, delay: float) -> None:
        self.delay = delay
        self.answers: dict[str, str] = {}
        self.asked = threading.Event()
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                responder.asked.set()
                token = self.path.rsplit("/", 1)[-1]
                body = responder.answers.get(token, "").encode()
                time.sleep(responder.delay / 2)  # two pauses: http-01 gives up after 5 s
                self.send_response(200 if body else 404)  # without a byte
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.flush()
                time.sleep(responder.delay / 2)
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True

    @contextlib.contextmanager
    def running(self) -> Iterator[SlowResponder]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(timeout=10)


def config(workdir: Path, *, shutdown_timeout: str, workers: int = 1,
           validation_timeout: str = "20s") -> tuple[Path, Path, int, int]:
    """The server's TOML (as integration.clients writes it, plus the settings here);
    (its path, the data dir, the ACME port, the http-01 port)."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, port, http01_port = workdir / "data", free_port(), free_port()
    path = write_config(workdir / "acme-ca.toml", data_dir=data_dir, port=port,
                        http01_port=http01_port, extra=f'timeout = "{validation_timeout}"\n')
    text = path.read_text().replace(
        "[server]\n", f'[server]\nshutdown_timeout = "{shutdown_timeout}"\nworkers = {workers}\n')
    path.write_text(text)
    return path, data_dir, port, http01_port


def start_validation(acme_server: AcmeServer, responder: SlowResponder) -> str:
    """An account, an order for NAMES[0], its http-01 challenge answered: the
    challenge's URL (the CA now fetches from the slow responder)."""
    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    acme = connect(acme_server, key, jose.ES256)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    csr = crypto_util.make_csr(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), [NAMES[0]])
    order = acme.new_order(csr)
    (authz,) = order.authorizations
    challb = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
    response, validation = challb.chall.response_and_validation(key)
    responder.answers[challb.chall.encode("token")] = validation
    acme.answer_challenge(challb, response)
    return str(challb.uri)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    return False


async def left_processing(db: Path) -> tuple[list[Any], list[Any]]:
    """Every challenge and order still processing (however recently)."""
    store = await SqliteStore.open(db)
    try:
        later = datetime.now(UTC) + timedelta(days=1)
        return (list(await store.processing_challenges(later, limit=100)),
                list(await store.processing_orders(later, limit=100)))
    finally:
        await store.close()


async def challenge_status(db: Path, challenge_url: str) -> ChallengeStatus:
    store = await SqliteStore.open(db)
    try:
        return (await store.get_challenge(challenge_url.rsplit("/", 1)[-1])).status
    finally:
        await store.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_a_validation_in_flight_finish_then_exits_0(
    tmp_path: Path, workers: int
) -> None:
    path, data_dir, port, http01_port = config(tmp_path / "acme-ca", shutdown_timeout="20s",
                                               workers=workers)
    delay = 6.0  # longer than the 5 s the supervisor granted before this issue
    with SlowResponder(http01_port, delay).running() as responder, \
            serving_config(path, data_dir, port) as server:
        url = start_validation(AcmeServer(server, http01_port), responder)
        assert responder.asked.wait(10), server.log("stderr")
        os.kill(server.process.pid, signal.SIGTERM)
        stopped = time.monotonic()
        until(lambda: refused(port), "serve refused new connections", REFUSED_WITHIN)
        code = server.process.wait(timeout=20)
        took = time.monotonic() - stopped
        log = server.log("stderr")
    assert code == 0, log
    assert took < 20, log
    db = data_dir / "acme-ca.db"
    assert asyncio.run(challenge_status(db, url)) is ChallengeStatus.VALID, log
    assert asyncio.run(left_processing(db)) == ([], []), log
    assert "finishing the work in flight" in log


def test_a_validation_cut_by_the_deadline_is_finished_by_the_next_start(
    tmp_path: Path,
) -> None:
    """shutdown_timeout 1s, a responder that takes 4s: the process exits 0 at the
    deadline with the challenge left processing (documented in docs/operations.md); the
    next start resumes it once it is older than a validation lasts, and it ends valid
    with nothing processing."""
    path, data_dir, port, http01_port = config(tmp_path / "acme-ca", shutdown_timeout="1s",
                                               validation_timeout="5s")
    db = data_dir / "acme-ca.db"
    with SlowResponder(http01_port, 4.0).running() as responder:
        with serving_config(path, data_dir, port) as server:
            url = start_validation(AcmeServer(server, http01_port), responder)
            assert responder.asked.wait(10), server.log("stderr")
            os.kill(server.process.pid, signal.SIGTERM)
            stopped = time.monotonic()
            code = server.process.wait(timeout=15)
            took = time.monotonic() - stopped
            first_log = server.log("stderr")
        assert code == 0, first_log
        assert took < 1 + 2 + 2, first_log  # the deadline, the handlers' grace, slack
        assert asyncio.run(challenge_status(db, url)) is ChallengeStatus.PROCESSING
        responder.delay = 0.0
        with serving_config(path, data_dir, port) as again:
            # resumed once older than timeout + grace + margin (5 + 1 + 5 s)
            until(lambda: asyncio.run(challenge_status(db, url)) is not
                  ChallengeStatus.PROCESSING, "the next start finished the validation", 30)
            log = again.log("stderr")
    assert asyncio.run(challenge_status(db, url)) is ChallengeStatus.VALID, log
    assert asyncio.run(left_processing(db)) == ([], []), log
    assert "resuming 1 validation(s)" in log
