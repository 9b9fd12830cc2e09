"""The servers a comparison drives: acme-ca and Pebble, each a child process.

``start_acme_ca`` runs ``python -m acme_ca --config <file> serve`` with a fresh data
directory (the CA is bootstrapped on first start), SQLite storage, and ``[validation]``
sending http-01 for every benchmark name to 127.0.0.1:<the generator's port>.

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
import sys
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

from bench.http01 import free_port

READY_TIMEOUT = 90.0  # seconds: acme-ca's first start makes an RSA 4096 root
STOP_TIMEOUT = 10.0


@dataclass
class Peer:
    """A server process under test."""

    name: str
    directory: str
    ca_bundle: Path
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self, stream: str = "stderr") -> str:
        path = self.workdir / f"{self.name}.{stream}"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_problems(self) -> dict[str, int]:
        """Lines in the server's logs that report errors: count by first word."""
        counts: dict[str, int] = {}
        for line in (self.log("stdout") + self.log("stderr")).splitlines():
            if " ERROR " in line or line.startswith("Traceback") or "panic:" in line:
                key = "Traceback" if line.startswith("Traceback") else "ERROR"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def stop(self) -> int:
        return stop_process(self.process)

    def dump_go_stacks(self) -> dict[str, Any]:
        """For a hung Go server (Pebble): SIGQUIT makes it print every goroutine and exit;
        returns goroutine states and where the blocked ones wait, from its stderr."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGQUIT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
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
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    return process.wait(timeout=STOP_TIMEOUT)


def _spawn(
    name: str, argv: list[str], workdir: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        (workdir / f"{name}.stdout").open("wb") as out,
        (workdir / f"{name}.stderr").open("wb") as err,
    ):
        return subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=err)


def _env(**extra: str) -> dict[str, str]:
    drop = ("ACME_CA_", "PEBBLE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


async def _wait_ready(peer: Peer, timeout: float = READY_TIMEOUT) -> None:
    """Until GET directory answers 200 over TLS verified with the peer's CA bundle."""
    deadline, last = time.monotonic() + timeout, "no attempt"
    while time.monotonic() < deadline:
        if peer.process.poll() is not None:
            raise RuntimeError(
                f"{peer.name} exited {peer.process.returncode} before answering:\n"
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


def acme_ca_config(data_dir: Path, port: int, http01_port: int, names: list[str],
                   workers: int = 1) -> str:
    hosts = "".join(f'"{name}" = "127.0.0.1"\n' for name in names)
    return (
        f'[server]\nlisten = "127.0.0.1:{port}"\nhostname = "localhost"\n'
        f'data_dir = "{data_dir}"\nworkers = {workers}\n\n'
        '[policy]\nallowed_domains = ["bluerobin.local"]\n\n'
        f"[validation]\nhttp01_port = {http01_port}\n\n"
        f"[validation.hosts]\n{hosts}"
    )


async def start_acme_ca(workdir: Path, http01_port: int, names: list[str],
                        workers: int = 1) -> Peer:
    """acme-ca serve in ``workdir`` (fresh data directory), ready to take orders."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    data_dir = workdir / "data"
    config = workdir / "acme-ca.toml"
    config.write_text(acme_ca_config(data_dir, port, http01_port, names, workers),
                      encoding="utf-8")
    argv = [sys.executable, "-m", "acme_ca", "--config", str(config), "serve"]
    process = _spawn("acme-ca", argv, workdir, _env())
    peer = Peer(
        "acme-ca",
        f"https://127.0.0.1:{port}/directory",  # the server names itself by address
        data_dir / "ca" / "root-ca.crt",
        process,
        workdir,
    )
    try:
        await _wait_ready(peer)
    except BaseException:
        peer.stop()
        raise
    return peer


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
    dns_port, management = free_port(), free_port()
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
    process = _spawn("challtestsrv", argv, workdir, _env())
    try:
        await _wait_port(dns_port, process)  # it serves DNS over TCP and UDP on that port
    except BaseException:
        stop_process(process)
        raise
    return process, dns_port


async def start_pebble(workdir: Path, http01_port: int, dns_port: int) -> Peer:
    """Pebble with real http-01 validation against the generator's port."""
    ca, cert, key = make_tls_files(workdir)
    port, management, tls_port = free_port(), free_port(), free_port()
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
    env = _env(PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    process = _spawn("pebble", argv, workdir, env)
    peer = Peer("pebble", f"https://localhost:{port}/dir", ca, process, workdir)
    try:
        await _wait_ready(peer)
    except BaseException:
        peer.stop()
        raise
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
