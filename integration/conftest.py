"""Shared pieces of the integration tests: external programs, the CLI and a live server.

Everything here runs real processes: `openssl`, `python -m acme_ca ...`, and
`acme-ca serve` on a port the OS picks, on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from bench.http01 import free_port as free_port  # one way to ask the OS for a port
from tests.required import require_program

CLI_TIMEOUT = 90  # seconds; an RSA 4096 key on a busy 2-core machine takes a few
READY_DEADLINE = 15.0  # seconds for `serve` to answer /health
DEADLINE = 10.0  # seconds: far beyond any wait that succeeds, even on a busy machine
POLL = 0.05


def until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Return as soon as `condition()` holds; fail the test if it does not within
    `timeout` seconds. `what` says what was awaited. tests.waiting.until, for the
    synchronous integration tests: they wait on a condition, never for a time."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"waited {timeout:g} s in vain until {what}")
        time.sleep(POLL)


def revocation_table(*, ocsp: bool = False) -> str:
    """A ``[revocation]`` table whose plain-HTTP listener (CRLs, OCSP) is on a free port:
    its default, 127.0.0.1:8556, is one fixed port that two servers cannot share;
    ``ocsp``: with the OCSP responder on."""
    return (f'\n[revocation]\nhttp_listen = "127.0.0.1:{free_port()}"\n'
            + ("ocsp = true\n" if ocsp else ""))


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without any ACME_CA_* setting of the developer, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACME_CA_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path,
    check: bool = True,
    timeout: float = CLI_TIMEOUT,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a program to completion; with `check`, fail the test showing its output."""
    result = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, argv))} exited {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
    return result


def run_cli(
    *args: str | Path,
    cwd: Path,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """`acme-ca ARGS` as a separate process (sys.executable -m acme_ca)."""
    return run(
        [sys.executable, "-m", "acme_ca", *args],
        cwd=cwd,
        check=check,
        env=clean_env(env),
        timeout=timeout,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1 with exactly one 'acme-ca: error:' line on stderr containing each needle."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("acme-ca: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def openssl() -> str:
    return require_program("openssl")


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """run_cli with the test's tmp_path as working directory."""

    def call(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("cwd", tmp_path)
        return run_cli(*args, **kwargs)

    return call


class Response(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes
    peer_cert: bytes  # DER of the server's TLS certificate


def client_context(cafile: Path) -> ssl.SSLContext:
    """Trusts only `cafile`, checks the host name: what a careful client does."""
    return ssl.create_default_context(cafile=str(cafile))


def open_https(port: int, cafile: Path, hostname: str = "127.0.0.1") -> http.client.HTTPConnection:
    """A keep-alive HTTPS connection to 127.0.0.1:port, verified as `hostname`."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tls = client_context(cafile).wrap_socket(raw, server_hostname=hostname)
    except BaseException:
        raw.close()
        raise
    conn = http.client.HTTPConnection(hostname, port, timeout=5)
    conn.sock = tls  # already connected: http.client uses it as is
    return conn


def request(conn: http.client.HTTPConnection, path: str) -> Response:
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    peer = conn.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    return Response(resp.status, dict(resp.getheaders()), body, peer)


def https_get(port: int, path: str, cafile: Path, hostname: str = "127.0.0.1") -> Response:
    """One GET on a fresh, fully verified TLS connection."""
    conn = open_https(port, cafile, hostname)
    try:
        return request(conn, path)
    finally:
        conn.close()


class Server(NamedTuple):
    base_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def root_cert(self) -> Path:
        return self.data_dir / "ca" / "root-ca.crt"

    def log(self, stream: str = "stdout") -> str:
        return log_path(self.data_dir, self.port, stream).read_text(errors="replace")

    def get(self, path: str) -> Response:
        return https_get(self.port, path, self.root_cert)


def log_path(data_dir: Path, port: int, stream: str) -> Path:
    return data_dir.parent / f"{data_dir.name}.serve-{port}.{stream}"


def stop_process(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM by pid, wait, SIGKILL as a fallback; the exit status."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    return process.wait(timeout=10)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    last: BaseException | str = "no attempt"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"acme-ca serve exited {server.process.returncode} before answering:\n"
                f"{server.log('stdout')}\n{server.log('stderr')}"
            )
        if server.root_cert.exists():
            try:
                resp = server.get("/health")
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                last = exc
            else:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        time.sleep(POLL)
    pytest.fail(f"acme-ca serve did not answer /health within {READY_DEADLINE} s: {last!r}")


@contextlib.contextmanager
def serving(data_dir: Path, port: int | None = None, *extra: str) -> Iterator[Server]:
    """`acme-ca serve` on 127.0.0.1:port in `data_dir` (with `extra` arguments), ready;
    always stopped afterwards."""
    port = port or free_port()
    argv = ["--data-dir", str(data_dir), "serve"]
    argv += ["--listen", f"127.0.0.1:{port}", "--hostname", "localhost",
             "--http-listen", f"127.0.0.1:{free_port()}", *extra]
    with _serving(argv, data_dir.parent, data_dir, port) as server:
        yield server


@contextlib.contextmanager
def _serving(args: list[str], cwd: Path, data_dir: Path, port: int,
             program: Sequence[str] = (sys.executable, "-m", "acme_ca"),
             **popen: Any) -> Iterator[Server]:
    """`python -m acme_ca ARGS` (or `program ARGS`: a serve command), logging next to
    `data_dir`, ready; stopped by pid afterwards. `popen`: more Popen arguments."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with (
        log_path(data_dir, port, "stdout").open("wb") as out,
        log_path(data_dir, port, "stderr").open("wb") as err,
    ):
        popen = {"env": clean_env(), **popen}
        process = subprocess.Popen([*program, *args], cwd=cwd, stdout=out, stderr=err, **popen)
        server = Server(f"https://127.0.0.1:{port}", data_dir, process)
        try:
            _wait_ready(server)
            yield server
        finally:
            stop_process(process)


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers (serve_factory(data_dir=None, port=None)); all stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(data_dir: Path | None = None, port: int | None = None, *extra: str) -> Server:
            return stack.enter_context(serving(data_dir or tmp_path / "data", port, *extra))

        yield start


@pytest.fixture
def server(serve_factory: Callable[..., Server]) -> Iterator[Server]:
    """A running `acme-ca serve` that bootstrapped its CA in an empty tmp data dir.

    Yields (base_url, data_dir, process); stopped by pid at teardown, pass or fail.
    """
    yield serve_factory()


@pytest.fixture
def acme_server(tmp_path: Path) -> Iterator[Any]:
    """`acme-ca serve` whose http-01 validation goes to 127.0.0.1 (integration.clients)."""
    from integration.clients import serving_acme  # clients imports this module

    with serving_acme(tmp_path / "acme-ca") as acme:
        yield acme


@contextlib.contextmanager
def serving_acme_validation(workdir: Path, validation: str) -> Iterator[Any]:
    """`acme-ca serve --config` (as integration.clients.serving_acme: policy bluerobin.local)
    whose [validation] table is `validation` (TOML lines: resolvers, zone_resolvers, hosts,
    tlsalpn01_port ...); yields an integration.clients.AcmeServer, stopped by pid."""
    from integration.clients import AcmeServer  # clients imports this module

    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, port = workdir / "data", free_port()
    config = workdir / "acme-ca.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nhostname = "localhost"\n'
        f'data_dir = "{data_dir}"\n\n[policy]\nallowed_domains = ["bluerobin.local"]\n'
        f"{revocation_table()}\n[validation]\n{validation}\n",
        encoding="utf-8",
    )
    with serving_config(config, data_dir, port) as server:
        yield AcmeServer(server, 0)


@contextlib.contextmanager
def serving_config(config: Path, data_dir: Path, port: int) -> Iterator[Server]:
    """`acme-ca --config CONFIG serve` (listening on `port`, data in `data_dir`), ready;
    stopped by pid afterwards."""
    with _serving(["--config", str(config), "serve"], config.parent, data_dir, port) as server:
        yield server
