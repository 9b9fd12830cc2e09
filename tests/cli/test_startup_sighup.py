"""A SIGHUP while `serve` starts (issue 13 item 7): `systemctl reload` right after
`systemctl start` (the unit is Type=simple, so systemd does not wait for the listener)
sends it before the event loop handles SIGHUP; its default action killed the server,
and with --workers one child's death stopped them all with status 1. Until the loop
takes it, SIGHUP is ignored. Real processes, stopped by their pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.http01 import free_port
from tests.cli.conftest import serving, until_serving

WORKERS = """
import os, signal, sys, time
from pathlib import Path
from acme_ca.cli.lifecycle import ignore_sighup_until_serving
from acme_ca.cli.workers import run_workers
ignore_sighup_until_serving()
def work(index):
    Path(sys.argv[1], str(index)).write_text(str(os.getpid()))
    time.sleep(1.5)  # starting: no event loop handles SIGHUP yet
sys.exit(run_workers(2, work))
"""


def test_a_sighup_while_workers_start_does_not_kill_them(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])  # this checkout's acme_ca
    process = subprocess.Popen([sys.executable, "-c", WORKERS, str(tmp_path)],
                               env={**os.environ, "PYTHONPATH": root})
    try:
        deadline = time.monotonic() + 20
        while not all((tmp_path / str(i)).exists() for i in range(2)):
            assert time.monotonic() < deadline, "the workers did not start"
            assert process.poll() is None, "the parent ended while starting"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGHUP)  # forwarded to both workers
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def sighup_ignored(pid: int) -> bool:
    """Whether the process ignores SIGHUP now (/proc/PID/status SigIgn, bit 0)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & 1 << (signal.SIGHUP - 1))
    return False


def test_a_sighup_while_serve_starts_does_not_kill_it(tmp_path: Path) -> None:
    """The first start generates the hierarchy's keys: seconds without an event loop.
    A SIGHUP then is ignored, the server starts, and SIGTERM stops it with status 0."""
    config = tmp_path / "acme-ca.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{free_port()}"\nhostname = "localhost"\n'
        f'data_dir = "{tmp_path / "data"}"\n\n[revocation]\n'
        f'http_listen = "127.0.0.1:{free_port()}"\n', encoding="utf-8")
    root = str(Path(__file__).resolve().parents[2])
    with serving(config, {**os.environ, "PYTHONPATH": root}) as process:
        deadline = time.monotonic() + 30
        while not sighup_ignored(process.pid):
            assert time.monotonic() < deadline and process.poll() is None, \
                "serve never ignored SIGHUP while it started"
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGHUP)
        until_serving(process)  # the loop runs: ready
