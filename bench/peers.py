"""The servers a comparison drives, as child processes: ``Peer``, and Pebble.

acme-ca's side (one server, or replicas behind haproxy) is in bench/replicas.py.
``start_pebble`` runs Debian's ``pebble`` with PEBBLE_VA_NOSLEEP=1 and
PEBBLE_WFE_NONCEREJECT=0 (it really validates: PEBBLE_VA_ALWAYS_VALID is removed from
its environment), httpPort = the generator's port, a TLS certificate made here, and
``-dnsserver`` pointing at ``pebble-challtestsrv`` (same Debian package), which answers
every A query with 127.0.0.1 and no AAAA.

Every process listens on 127.0.0.1 on ports the OS chose, logs to files in its
working directory, and is stopped by its pid (SIGTERM, then SIGKILL after 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench import postgres
from bench.http01 import free_ports
from bench.loadgen import Processes

READY_TIMEOUT = 90.0  # seconds: acme-ca's first start makes an RSA 4096 root
STOP_TIMEOUT = 10.0


@dataclass
class Peer:
    """A server under test: its own processes (acme-ca's replicas, or one), and beside
    them what a run measures and stops with it (haproxy; PostgreSQL's backends)."""

    name: str
    directory: str
    ca_bundle: Path
    processes: dict[str, subprocess.Popen[bytes]]  # log name -> process; their CPU is "server"
    workdir: Path
    proxy: subprocess.Popen[bytes] | None = None
    database: str | None = None  # a PostgreSQL database whose backends are measured

    def measure(self) -> dict[str, Processes]:
        """What loadgen.RunConfig.measure samples: the server, and haproxy and
        PostgreSQL's backends when there are (their CPU is reported beside the server's)."""
        groups: dict[str, Processes] = {
            "server": lambda: [p.pid for p in self.processes.values()]
        }
        if self.proxy is not None:
            proxy = self.proxy
            groups["proxy"] = lambda: [proxy.pid]
        if self.database is not None:
            database = self.database
            groups["database"] = lambda: postgres.backends(database)
        return groups

    def log(self, stream: str = "stderr") -> str:
        """The servers' logs (each replica's in turn), then haproxy's."""
        names = [*self.processes, *(["haproxy"] if self.proxy is not None else [])]
        paths = [self.workdir / f"{name}.{stream}" for name in names]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def log_problems(self) -> dict[str, int]:
        """Lines in the server's logs that report errors: count by first word."""
        counts: dict[str, int] = {}
        for line in (self.log("stdout") + self.log("stderr")).splitlines():
            if " ERROR " in line or line.startswith("Traceback") or "panic:" in line:
                key = "Traceback" if line.startswith("Traceback") else "ERROR"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def stop(self) -> int:
        """haproxy first, then every server; the first non-zero exit status, else 0."""
        if self.proxy is not None:
            stop_process(self.proxy)
        for process in self.processes.values():  # all at once: they shut down together
            terminate(process)
        codes = [wait_or_kill(p) for p in self.processes.values()]
        return next((code for code in codes if code), 0)

    def dump_go_stacks(self) -> dict[str, Any]:
        """For a hung Go server (Pebble): SIGQUIT makes it print every goroutine and exit;
        returns goroutine states and where the blocked ones wait, from its stderr."""
        process = next(iter(self.processes.values()))
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGQUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT)
        return go_stack_summary(self.log("stderr"))


def go_stack_summary(text: str) -> dict[str, Any]:
    """Goroutine states, and the first pebble frame of each blocked (semacquire) one."""
    states: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    for block in text.split("\n\n"):
        head = re.match(r"goroutine \d+ \[([^\],]+)", block)
        if head is None:
            continue
        states[head.group(1)] += 1
        frame = re.search(
            r"^github\.com/letsencrypt/pebble/(\S+)\(.*\n\s+\S*?/([\w.]+:\d+)", block, re.M
        )
        if head.group(1) == "semacquire" and frame:
            waits[f"{frame.group(1)} ({frame.group(2)})"] += 1
    return {"goroutines": dict(states), "blocked_in": dict(waits.most_common(8))}


def stop_process(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM by pid, wait, SIGKILL as a fallback; the exit status."""
    terminate(process)
    return wait_or_kill(process)


def terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by pid, once: a second SIGTERM during a graceful shutdown would find the
    server's handler gone and kill it (exit -15), as the run under load showed."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)


def wait_or_kill(process: subprocess.Popen[bytes]) -> int:
    """Wait for a process already sent SIGTERM, SIGKILL after STOP_TIMEOUT; its exit status."""
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    return process.wait(timeout=STOP_TIMEOUT)


def spawn(
    name: str, argv: list[str], workdir: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        (workdir / f"{name}.stdout").open("wb") as out,
        (workdir / f"{name}.stderr").open("wb") as err,
    ):
        return subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=err)


def environment(**extra: str) -> dict[str, str]:
    drop = ("ACME_CA_", "PEBBLE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


async def _wait_ready(peer: Peer, timeout: float = READY_TIMEOUT) -> None:
    """Until GET directory answers 200 over TLS verified with the peer's CA bundle."""
    deadline, last = time.monotonic() + timeout, "no attempt"
    while time.monotonic() < deadline:
        gone = [(n, p) for n, p in peer.processes.items() if p.poll() is not None]
        if peer.proxy is not None and peer.proxy.poll() is not None:
            gone.append(("haproxy", peer.proxy))
        if gone:
            name, process = gone[0]
            raise RuntimeError(
                f"{name} exited {process.returncode} before answering:\n"
                f"{peer.log('stdout')[-2000:]}\n{peer.log('stderr')[-2000:]}"
            )
        if peer.ca_bundle.exists():
            try:
                context = ssl.create_default_context(cafile=str(peer.ca_bundle))
                connector = aiohttp.TCPConnector(ssl=context, family=socket.AF_INET)
                async with (
                    aiohttp.ClientSession(connector=connector) as session,
                    session.get(peer.directory, timeout=aiohttp.ClientTimeout(total=5)) as resp,
                ):
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except (OSError, ssl.SSLError, aiohttp.ClientError, TimeoutError) as exc:
                last = repr(exc)
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{peer.name} did not answer {peer.directory} within {timeout:g} s: {last}")


async def start(peer: Peer) -> None:
    """Wait until ``peer`` answers; stop it if it does not."""
    try:
        await _wait_ready(peer)
    except BaseException:
        peer.stop()
        raise


def pebble_installed() -> bool:
    return bool(shutil.which("pebble") and shutil.which("pebble-challtestsrv"))


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a localhost/127.0.0.1 certificate it signed: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench pebble TLS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=2))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = directory / "tls-ca.pem", directory / "tls-cert.pem", directory / "tls-key.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


async def _wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


async def start_dns(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """pebble-challtestsrv as a DNS server only: every A is 127.0.0.1, no AAAA."""
    dns_port, management = free_ports(2)
    argv = [
        "pebble-challtestsrv",
        "-dns01",
        f"127.0.0.1:{dns_port}",
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
        "-management",
        f"127.0.0.1:{management}",
        "-defaultIPv4",
        "127.0.0.1",
        "-defaultIPv6",
        "",
    ]
    process = spawn("challtestsrv", argv, workdir, environment())
    try:
        await _wait_port(dns_port, process)  # it serves DNS over TCP and UDP on that port
    except BaseException:
        stop_process(process)
        raise
    return process, dns_port


async def start_pebble(workdir: Path, http01_port: int, dns_port: int) -> Peer:
    """Pebble with real http-01 validation against the generator's port."""
    ca, cert, key = make_tls_files(workdir)
    port, management, tls_port = free_ports(3)
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http01_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    path = workdir / "pebble-config.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    argv = ["pebble", "-config", str(path), "-dnsserver", f"127.0.0.1:{dns_port}"]
    env = environment(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    process = spawn("pebble", argv, workdir, env)
    peer = Peer("pebble", f"https://localhost:{port}/dir", ca, {"pebble": process}, workdir)
    await start(peer)
    return peer


def pebble_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "pebble"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()
