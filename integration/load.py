"""Concurrent ACME clients for test_replicas.py: certbot's `acme` library in threads and
lego in subprocesses, taking jobs (the names of one certificate each) from one queue.

A client retries what the death of a replica or a database outage breaks, as a careful
client does: a request whose connection failed, or that was answered 503, is sent again
(a POST with a fresh nonce: the one it carried may have been consumed). lego retries
only badNonce by itself, so a failed `lego run` is run again, as an operator's timer
would. Every retry is counted, so that a test without faults can require none.
"""

from __future__ import annotations

import collections
import datetime
import functools
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from integration.clients import CLIENT_TIMEOUT, load_certs, san_names
from integration.cluster import Cluster
from integration.conftest import clean_env, require_program

ATTEMPTS = 40  # per request; with the backoff below, about 30 s of outage at most
BACKOFF = 0.05  # seconds, times the attempt number, at most MAX_PAUSE
MAX_PAUSE = 1.0
LEGO_ATTEMPTS = 5
ORDER_ATTEMPTS = 3
NEW_ORDER = "new order after serverInternal"  # the retry counted for an order ended invalid
ISSUANCE_DEADLINE = datetime.timedelta(seconds=60)


@dataclass(frozen=True)
class Issued:
    client: str  # "acme" or "lego"
    names: tuple[str, ...]
    serial: int


@dataclass
class Tally:
    issued: list[Issued] = field(default_factory=list)
    retries: collections.Counter[str] = field(default_factory=collections.Counter)
    failed_lego_runs: list[str] = field(default_factory=list)  # the end of each one's stderr
    errors: list[str] = field(default_factory=list)  # a client that gave up


def pause(attempt: int, retry_after: str | None = None) -> None:
    seconds = BACKOFF * (attempt + 1)
    if retry_after and retry_after.isdigit():
        seconds = int(retry_after)
    time.sleep(min(seconds, MAX_PAUSE))


class RetryingNetwork(client.ClientNetwork):
    """certbot's ClientNetwork, retrying a request that failed on a dead connection or
    was answered 503 (with Retry-After: RFC 8555 6.6). With `keep_alive` False every
    request goes on a new connection, so haproxy sends each to the next replica: a
    nonce from one replica is then used on another. A badNonce answer, which the
    library retries by itself, is counted too."""

    def __init__(self, key: jose.JWK, root_cert: Path, *, keep_alive: bool) -> None:
        super().__init__(key, alg=jose.ES256, verify_ssl=str(root_cert),
                         user_agent="acme-ca-replicas", timeout=30)
        if not keep_alive:
            self.session.headers["Connection"] = "close"
        self.retries: collections.Counter[str] = collections.Counter()
        self._last: requests.Response | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any
                      ) -> requests.Response:
        if method == "POST":  # post() retries it, with a fresh nonce
            self._last = None
            self._last = super()._send_request(method, url, *args, **kwargs)
            if self._last.status_code == 400 and b":badNonce" in self._last.content:
                self.retries["badNonce"] += 1  # the library retries it once by itself
            return self._last
        for attempt in range(ATTEMPTS):
            try:
                response = super()._send_request(method, url, *args, **kwargs)
            except requests.ConnectionError:
                self.retries[f"{method} connection"] += 1
                pause(attempt)
                continue
            if response.status_code != 503 or attempt == ATTEMPTS - 1:
                return response
            self.retries[f"{method} 503"] += 1
            pause(attempt, response.headers.get("Retry-After"))
        raise requests.ConnectionError(f"{method} {url}: {ATTEMPTS} attempts failed")

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for attempt in range(ATTEMPTS):
            try:
                return super().post(*args, **kwargs)
            except requests.ConnectionError:
                if attempt == ATTEMPTS - 1:
                    raise
                self.retries["POST connection"] += 1
                pause(attempt)
            except messages.Error:
                last = self._last
                if last is None or last.status_code != 503 or attempt == ATTEMPTS - 1:
                    raise
                self.retries["POST 503"] += 1
                pause(attempt, last.headers.get("Retry-After"))
        raise AssertionError("unreachable")


class LibraryClient:
    """One account of certbot's `acme` library (ClientV2), issuing one order at a time.

    It talks to the CA over two networks (each with its nonces and its connections), so
    that the two challenges of an order are answered at the same moment: two replicas
    may then validate one order's authorizations at once, and the order must become
    ready all the same (RFC 8555 7.1.6)."""

    def __init__(self, cluster: Cluster, *, keep_alive: bool) -> None:
        self.key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        self.responder = cluster.responder
        self.nets = [RetryingNetwork(self.key, cluster.root_cert, keep_alive=keep_alive)
                     for _ in range(2)]
        directory = client.ClientV2.get_directory(cluster.directory, self.nets[0])
        self.acme, self.other = (client.ClientV2(directory, net) for net in self.nets)
        self._other_thread = ThreadPoolExecutor(max_workers=1)
        try:
            self.acme.new_account(messages.NewRegistration.from_data(
                terms_of_service_agreed=True))
        except errors.ConflictError as conflict:  # a retried newAccount that went through
            self.acme.query_registration(messages.RegistrationResource(
                uri=conflict.location, body=messages.Registration()))
        self.nets[1].account = self.nets[0].account

    def issue(self, names: tuple[str, ...]) -> Issued:
        """A certificate for `names`; a new order when the server ended the last one with
        serverInternal (an issuance whose replica died: RFC 8555 7.1.6, "invalid")."""
        for _ in range(ORDER_ATTEMPTS - 1):
            try:
                return self._order(names)
            except errors.IssuanceError as ended:
                if ended.error.code != "serverInternal":
                    raise
                self.nets[0].retries[NEW_ORDER] += 1
        return self._order(names)

    def _order(self, names: tuple[str, ...]) -> Issued:
        """new-order, http-01 for every name, finalize, download (RFC 8555 7.4)."""
        key_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        orderr = self.acme.new_order(crypto_util.make_csr(key_pem, list(names)))
        answers, published = [], {}
        for authzr in orderr.authorizations:
            challb = next(c for c in authzr.body.challenges
                          if isinstance(c.chall, challenges.HTTP01))
            response, validation = challb.response_and_validation(self.key)
            published[challb.chall.encode("token")] = validation
            answers.append((challb, response))
        self.responder.publish(published)
        # every challenge at once, the first here and the others on the other network;
        # an answer repeated by a retry is harmless (RFC 8555 7.5.1)
        others = [self._other_thread.submit(self.other.answer_challenge, *answer)
                  for answer in answers[1:]]
        self.acme.answer_challenge(*answers[0])
        for answered in others:
            answered.result()
        deadline = datetime.datetime.now() + ISSUANCE_DEADLINE
        orderr = self.acme.poll_authorizations(orderr, deadline)
        retries = self.nets[0].retries.total()
        try:
            orderr = self.acme.begin_finalization(orderr)
        except messages.Error as error:  # a retried finalize whose first try went through
            if error.code != "orderNotReady" or self.nets[0].retries.total() == retries:
                raise
        body = orderr.body
        if body.status == messages.STATUS_VALID and body.certificate:
            pem = self.acme._post_as_get(body.certificate).text
        else:  # polls, finalizes again if the order is still ready
            pem = self.acme.poll_finalization(orderr, deadline).fullchain_pem
        leaf = x509.load_pem_x509_certificates(pem.encode())[0]
        assert san_names(leaf) == set(names), (san_names(leaf), names)
        return Issued("acme", names, leaf.serial_number)

    def settle(self, tally: Tally) -> None:
        """Done: close the connections, count the retries."""
        self._other_thread.shutdown()
        for net in self.nets:
            net.session.close()
            tally.retries.update(net.retries)


class LegoClient:
    """lego (/usr/bin/lego) with one account in `home`, answering http-01 through the
    shared webroot; one `lego run` per certificate."""

    def __init__(self, cluster: Cluster, home: Path) -> None:
        self.program = require_program("lego")
        self.cluster = cluster
        self.home = home
        self.failed_runs: list[str] = []  # the end of each failed run's stderr
        home.mkdir(parents=True, exist_ok=True)

    def issue(self, names: tuple[str, ...]) -> Issued:
        argv = [self.program, "--server", self.cluster.directory, "--accept-tos",
                "--email", "admin@bluerobin.local", "--path", str(self.home),
                *(arg for name in names for arg in ("--domains", name)),
                "--http", "--http.webroot", str(self.cluster.responder.webroot), "run"]
        env = clean_env({"LEGO_CA_CERTIFICATES": str(self.cluster.root_cert)})
        for _ in range(LEGO_ATTEMPTS):
            result = subprocess.run(argv, cwd=self.home, env=env, capture_output=True,
                                    text=True, timeout=CLIENT_TIMEOUT, check=False)
            if result.returncode == 0:
                break
            self.failed_runs.append(result.stderr[-2000:])
        else:
            raise AssertionError(f"lego run failed {LEGO_ATTEMPTS} times:\n{result.stderr}")
        leaf = load_certs(self.home / "certificates" / f"{names[0]}.crt")[0]
        assert san_names(leaf) == set(names), (san_names(leaf), names)
        return Issued("lego", names, leaf.serial_number)

    def settle(self, tally: Tally) -> None:
        """Done: count the failed runs."""
        tally.failed_lego_runs += self.failed_runs


class Load:
    """`library` threads of certbot's library (every other one without keep-alive) and
    `lego` threads running lego, taking `jobs` from one queue until it is empty."""

    def __init__(self, cluster: Cluster, workdir: Path, jobs: Sequence[tuple[str, ...]],
                 *, library: int, lego: int) -> None:
        self.cluster = cluster
        self.tally = Tally()
        self._jobs: queue.SimpleQueue[tuple[str, ...]] = queue.SimpleQueue()
        for job in jobs:
            self._jobs.put(job)
        self._lock = threading.Lock()
        clients = [
            ("acme library", functools.partial(LibraryClient, cluster, keep_alive=i % 2 == 0))
            for i in range(library)
        ] + [("lego", functools.partial(LegoClient, cluster, workdir / f"lego-{i}"))
             for i in range(lego)]
        self._threads = [threading.Thread(target=self._work, args=client, daemon=True)
                         for client in clients]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    @property
    def done(self) -> int:
        with self._lock:
            return len(self.tally.issued)

    def join(self, timeout: float) -> Tally:
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        stuck = sum(thread.is_alive() for thread in self._threads)
        if stuck:
            self.tally.errors.append(f"{stuck} clients still running after {timeout:g} s")
        return self.tally

    def _next(self) -> tuple[str, ...] | None:
        try:
            return self._jobs.get_nowait()
        except queue.Empty:
            return None

    def _work(self, what: str, make: Callable[[], LibraryClient | LegoClient]) -> None:
        """One client: jobs until the queue is empty or the client fails (reported by the
        test, with the replicas' logs)."""
        job = None
        try:
            client = make()
        except Exception as exc:
            self._failed(f"{what}: start", exc)
            return
        try:
            while (job := self._next()) is not None:
                issued = client.issue(job)
                with self._lock:
                    self.tally.issued.append(issued)
        except Exception as exc:
            self._failed(f"{what}: {job}", exc)
        finally:
            with self._lock:
                client.settle(self.tally)

    def _failed(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self.tally.errors.append(f"{what}: {type(exc).__name__}: {exc}")
