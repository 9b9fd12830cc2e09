"""Three `acme-ca serve` replicas on one PostgreSQL database, behind haproxy: the harness
of test_replicas.py.

- `Database`: the PostgreSQL database of the test (tests/store/pg.py's ``fresh_database``: a
  fresh one, dropped afterwards), for the checks and for killing its connections;
- `make_ca`: `acme-ca init`, once; the replicas share its files through their [ca] table;
- `Responder`: the http-01 answers of every client, files under one webroot
  (``.well-known/acme-challenge/<token>``, where lego's ``--http.webroot`` writes them),
  served on a loopback port where the validation of every replica connects
  ([validation] hosts and http01_port);
- `running_cluster`: the replicas, each with its own port, data directory (its TLS
  certificate) and logs, sharing the CA files and ``[storage] url``, and haproxy in front
  (mode tcp: TLS passes through; round robin; health checks on /readyz), whose address
  is every replica's ``[server] external_url``: the URL the clients see.

Every process is started here and stopped by its pid, pass or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import http.client
import json
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from acme_ca.config import default_ca_paths
from bench.http01 import free_ports
from integration.conftest import (
    POLL,
    READY_DEADLINE,
    clean_env,
    https_get,
    log_path,
    require_program,
    revocation_table,
    run_cli,
    stop_process,
    until,
)
from tests.store.pg import require_asyncpg, terminate_connections

CHECK_INTERVAL_MS = 250  # haproxy's health checks: a dead replica is DOWN within ~0.5 s
HOLD = 1.0  # seconds an http-01 answer waits for the other tokens of its order
LOG_TAIL = 6000  # characters of each log shown when a test fails


class Database:
    """The test's own PostgreSQL database (tests/store/pg.py makes and drops it): the SQL
    the test checks the replicas' work with, and the connections it kills."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """The rows of one statement, on a connection of its own."""
        return asyncio.run(_fetch(self.url, sql, *args))

    def terminate_connections(self) -> int:
        """pg_terminate_backend on every connection to this database but the caller's:
        how many were killed."""
        return asyncio.run(terminate_connections(self.url))


async def _fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    connection = await require_asyncpg().connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(sql, *args)]
    finally:
        await connection.close()


def make_ca(workdir: Path) -> dict[str, Path]:
    """`acme-ca init` in workdir/ca: the [ca] files every replica reads."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "root.pass").write_text(secrets.token_urlsafe(24) + "\n")
    data_dir = workdir / "ca"
    run_cli("--data-dir", data_dir, "init", "--passphrase-file", "root.pass", cwd=workdir)
    return default_ca_paths(data_dir)


class Responder:
    """http-01 for every client of the test: GET /.well-known/acme-challenge/<token>
    answers the file of that name under `webroot`, on 127.0.0.1:`port`.

    The tokens of one order, published together, are answered together: each request
    waits (``HOLD`` seconds at most) until every token of its order was asked for, so
    that the replicas validating an order's authorizations record their results at the
    same moment: the race of RFC 8555 7.1.6 that must still leave the order ready."""

    def __init__(self, webroot: Path, port: int) -> None:
        self.webroot = webroot
        self.port = port
        self._challenges = webroot / ".well-known" / "acme-challenge"
        self._challenges.mkdir(parents=True, exist_ok=True)
        self._asked = threading.Condition()
        self._orders: dict[str, frozenset[str]] = {}  # token -> the tokens of its order
        self._seen: set[str] = set()
        handler = functools.partial(_Handler, self, directory=str(webroot))
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def publish(self, answers: dict[str, str]) -> None:
        """Answer each key authorization for its token (RFC 8555 8.3), all together."""
        for token, key_authorization in answers.items():
            partial = self._challenges / f".{token}.tmp"
            partial.write_text(key_authorization)
            partial.replace(self._challenges / token)
        with self._asked:
            self._orders.update(dict.fromkeys(answers, frozenset(answers)))

    def wait_for_order(self, token: str) -> None:
        """Until every token of `token`'s order was asked for (HOLD seconds at most)."""
        with self._asked:
            self._seen.add(token)
            self._asked.notify_all()
            order = self._orders.get(token, frozenset())
            self._asked.wait_for(lambda: order <= self._seen, timeout=HOLD)

    def __enter__(self) -> Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, responder: Responder, *args: Any, **kwargs: Any) -> None:
        self.responder = responder
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.responder.wait_for_order(self.path.rsplit("/", 1)[-1])
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Replica(NamedTuple):
    name: str
    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]

    def log(self, stream: str = "stderr") -> str:
        return log_path(self.data_dir, self.port, stream).read_text(errors="replace")

    def healthy(self, root_cert: Path) -> bool:
        try:
            return https_get(self.port, "/health", root_cert).status == 200
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return False


def replica_config(
    *, port: int, data_dir: Path, proxy_port: int, storage: str, ca: dict[str, Path],
    http01_port: int, names: Iterable[str],
) -> str:
    """The TOML of one replica: its own listen port and data directory; the rest shared."""
    hosts = ", ".join(f'"{name}" = "127.0.0.1"' for name in names)
    ca_lines = "".join(f"{key} = {json.dumps(str(path))}\n" for key, path in ca.items())
    return (
        f'[server]\nlisten = "127.0.0.1:{port}"\nhostname = "localhost"\n'
        f"data_dir = {json.dumps(str(data_dir))}\n"
        f'external_url = "https://127.0.0.1:{proxy_port}"\n'
        f"\n[storage]\nurl = {json.dumps(storage)}\n"
        f"\n[ca]\n{ca_lines}"
        '\n[policy]\nallowed_domains = ["bluerobin.local"]\n'
        f"{revocation_table()}"
        f"\n[validation]\nhttp01_port = {http01_port}\n"
        f'allowed_networks = ["127.0.0.0/8"]\nhosts = {{{hosts}}}\n'
    )


@contextlib.contextmanager
def running_replica(name: str, config: Path, data_dir: Path, port: int) -> Iterator[Replica]:
    """`acme-ca --config CONFIG serve`, logging beside its data directory; stopped by pid
    (SIGTERM, then SIGKILL) afterwards unless the test killed it already."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (
        log_path(data_dir, port, "stdout").open("wb") as out,
        log_path(data_dir, port, "stderr").open("wb") as err,
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "acme_ca", "--config", str(config), "serve"],
            cwd=config.parent, stdout=out, stderr=err, env=clean_env(),
        )
        try:
            yield Replica(name, port, data_dir, process)
        finally:
            stop_process(process)


class ServerState(NamedTuple):
    status: str  # haproxy's: "UP", "DOWN", "UP 1/2" (going down), ...
    sessions: int  # open now (scur)
    total: int  # since start (stot)


class Haproxy(NamedTuple):
    port: int
    stats_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def servers(self) -> dict[str, ServerState]:
        """The replicas as haproxy sees them, from its stats socket."""
        with socket.create_connection(("127.0.0.1", self.stats_port), timeout=5) as sock:
            sock.sendall(b"show stat\n")
            data = b"".join(iter(lambda: sock.recv(65536), b""))
        lines = data.decode().removeprefix("# ").splitlines()
        return {
            row["svname"]: ServerState(row["status"], int(row["scur"]), int(row["stot"]))
            for row in csv.DictReader(lines)
            if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def all_up(self) -> bool:
        return all(state.status == "UP" for state in self.servers().values())


def haproxy_config(port: int, stats_port: int, root_cert: Path,
                   replicas: Sequence[tuple[str, int]]) -> str:
    """TCP mode (the replicas' TLS passes through), round robin, a connection refused by a
    dead replica retried on another (redispatch), /health checked over TLS."""
    servers = "".join(f"    server {name} 127.0.0.1:{port}\n" for name, port in replicas)
    checks = f"check check-ssl verify required ca-file {root_cert}"
    timing = f"inter {CHECK_INTERVAL_MS}ms fall 2 rise 2"
    return f"""global
    nbthread 1
    stats socket ipv4@127.0.0.1:{stats_port} level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch 1

frontend acme
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server {checks} {timing}
{servers}"""


@contextlib.contextmanager
def running_haproxy(workdir: Path, port: int, root_cert: Path,
                    replicas: Sequence[tuple[str, int]]) -> Iterator[Haproxy]:
    program = require_program("haproxy")
    (stats_port,) = free_ports(1)
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(port, stats_port, root_cert, replicas))
    log = workdir / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen([program, "-db", "-f", str(config)], cwd=workdir,
                                   stdout=out, stderr=subprocess.STDOUT)
        try:
            yield Haproxy(port, stats_port, process, log)
        finally:
            stop_process(process)


class Cluster(NamedTuple):
    proxy: Haproxy
    replicas: list[Replica]
    database: Database
    responder: Responder
    root_cert: Path

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.proxy.port}/directory"

    def replica(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def logs(self) -> str:
        """For a failure: what each replica said above INFO (warnings, errors and their
        tracebacks), the last of it, and the end of haproxy's log."""
        parts = []
        for replica in self.replicas:
            notable = [line for line in replica.log().splitlines() if " INFO " not in line]
            parts.append(f"--- {replica.name} (pid {replica.process.pid}), above INFO\n"
                         + "\n".join(notable)[-LOG_TAIL:])
        parts.append(f"--- haproxy\n{self.proxy.log.read_text(errors='replace')[-LOG_TAIL:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def running_cluster(workdir: Path, ca: dict[str, Path], database: Database,
                    names: Iterable[str], count: int = 3) -> Iterator[Cluster]:
    """`count` replicas started together (they migrate the database once between them),
    each ready; then haproxy, ready with every replica UP."""
    proxy_port, http01_port, *ports = free_ports(2 + count)
    names = tuple(names)
    with contextlib.ExitStack() as stack:
        responder = stack.enter_context(Responder(workdir / "webroot", http01_port))
        replicas = []
        for index, port in enumerate(ports):
            name, data_dir = f"r{index}", workdir / f"r{index}"
            config = workdir / f"{name}.toml"
            config.write_text(replica_config(
                port=port, data_dir=data_dir, proxy_port=proxy_port,
                storage=database.url, ca=ca, http01_port=http01_port, names=names))
            replicas.append(stack.enter_context(running_replica(name, config, data_dir, port)))
        root = ca["root_cert"]
        for replica in replicas:
            _wait_healthy(replica, root)
        proxy = stack.enter_context(
            running_haproxy(workdir, proxy_port, root, [(r.name, r.port) for r in replicas]))
        cluster = Cluster(proxy, replicas, database, responder, root)
        until(lambda: _proxy_ready(cluster), "haproxy saw every replica UP", READY_DEADLINE)
        yield cluster


def _wait_healthy(replica: Replica, root_cert: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    while not replica.healthy(root_cert):
        if replica.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"replica {replica.name} did not answer /health (exit status "
                        f"{replica.process.poll()}):\n{replica.log('stdout')}\n{replica.log()}")
        time.sleep(POLL)


def _proxy_ready(cluster: Cluster) -> bool:
    if cluster.proxy.process.poll() is not None:
        pytest.fail(f"haproxy exited {cluster.proxy.process.returncode}:\n"
                    f"{cluster.proxy.log.read_text(errors='replace')}")
    try:
        return cluster.proxy.all_up()
    except OSError:  # the stats socket is not listening yet
        return False
