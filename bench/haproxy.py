"""haproxy in front of acme-ca's replicas: the configuration docs/deployment.md shows,
and the bench's haproxy, which runs exactly that configuration on loopback ports.

``sections`` is the one template: a ``frontend`` and a ``backend`` to add to a
haproxy.cfg (Debian's keeps its ``global`` and ``defaults``). TCP mode, so TLS goes
through to the replicas untouched (each serves the CA's certificate and sees the
clients' handshakes); round robin with no stickiness (a replica shares nothing with
the others but the database); each replica checked every 2 s with ``GET /readyz`` over
TLS verified against the CA's root; a connection that a dead replica refuses is
retried on another.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

# The bench's global and defaults (Debian's own refer to /dev/log, a chroot and a
# user); what the deployment guide tells readers to add follows it unchanged. Its log
# (stderr, notice and above: replicas going down and up) lands in haproxy.stderr.
BENCH_PREAMBLE = """\
global
    maxconn 4096
    log stderr format short local0 notice

defaults
    log global
    timeout connect 5s
    timeout client 60s
    timeout server 60s

"""


def sections(bind: str, servers: Sequence[tuple[str, str]], ca_file: str) -> str:
    """The frontend listening on ``bind`` ("address:port") and the backend of
    ``servers`` ((name, "address:port") each), health-checked with ``ca_file``."""
    lines = [
        "frontend acme-ca",
        "    mode tcp",
        "    option tcplog",
        f"    bind {bind}",
        "    default_backend acme-ca-replicas",
        "",
        "backend acme-ca-replicas",
        "    mode tcp",
        "    balance roundrobin",
        "    option redispatch",
        "    retries 2",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        "    default-server check check-ssl verify required "
        f"ca-file {ca_file} inter 2s fall 2 rise 2",
        *(f"    server {name} {address}" for name, address in servers),
    ]
    return "\n".join(lines) + "\n"


def installed() -> bool:
    return shutil.which("haproxy") is not None


def write_config(path: Path, bind: str, servers: Sequence[tuple[str, str]],
                 ca_file: str) -> Path:
    """The bench's whole haproxy.cfg: its preamble, then ``sections``."""
    path.write_text(BENCH_PREAMBLE + sections(bind, servers, ca_file), encoding="utf-8")
    return path


def argv(config: Path) -> list[str]:
    """haproxy in the foreground (-db: no daemon), so that its pid is the proxy's."""
    return ["haproxy", "-db", "-f", str(config)]


def check_files(configs: Sequence[Path]) -> subprocess.CompletedProcess[str]:
    """``haproxy -c -f A -f B``: do these files, read in turn as one, parse?"""
    files = [arg for path in configs for arg in ("-f", str(path))]
    return subprocess.run(
        ["haproxy", "-c", *files], capture_output=True, text=True, check=False, timeout=30
    )
