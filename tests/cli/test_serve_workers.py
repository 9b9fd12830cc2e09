"""`serve --workers auto`: one worker process per core this process may run on, counted
from /proc, issuing certificates through the shared port (RFC 8555 section 7.4: orders
finalized and their certificates downloaded); the startup line says how many workers
"auto" gave. A bad --workers value is one line naming the key, before any CA is made."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from acme_ca.config_values import available_cores
from bench import loadgen, peers, replicas
from bench.http01 import Http01Responder, free_port
from tests.cli.conftest import Run, assert_one_line_error

CHECKOUT = str(Path(__file__).resolve().parents[2])  # this checkout's acme_ca
N, C = 4, 2


def children(pid: int) -> list[int]:
    """The processes ``pid`` forked, as /proc lists them."""
    return [int(child) for child in
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_workers_auto_forks_one_worker_per_core_and_they_issue(tmp_path: Path) -> None:
    """RFC 8555 section 7.4: orders finalized and certificates downloaded through the
    workers "auto" started, one per core of the process's affinity (not the machine's
    count, and within a cgroup v1 or v2 CPU quota if the machine has one:
    ``available_cores``, tests/test_config.py and tests/test_cpu_quota.py); SIGTERM
    stops them all with status 0."""
    cores = available_cores()
    assert cores <= len(os.sched_getaffinity(0))
    names = [loadgen.DEFAULT_NAMES.format(i=i) for i in range(N)]
    async with Http01Responder() as responder:
        port = free_port()
        config = tmp_path / "acme-ca.toml"
        config.write_text(replicas.acme_ca_config(tmp_path / "data", port, responder.port, names))
        argv = [sys.executable, "-m", "acme_ca", "--config", str(config), "serve",
                "--workers", "auto"]
        process = peers.spawn("acme-ca", argv, tmp_path, peers.environment(PYTHONPATH=CHECKOUT))
        peer = peers.Peer("acme-ca", f"https://127.0.0.1:{port}/directory",
                          tmp_path / "data" / "ca" / "root-ca.crt", {"acme-ca": process},
                          tmp_path)
        try:
            await peers.start(peer)
            workers = children(process.pid)
            stats = await loadgen.run(loadgen.RunConfig(
                directory=peer.directory, ca_bundle=peer.ca_bundle, n=N, c=C,
                measure=peer.measure()), responder)
        finally:
            status = peer.stop()
    assert len(workers) == (cores if cores > 1 else 0), (workers, peer.log())  # 1: no fork
    assert stats.errors == {} and stats.ok == N, (stats.errors, peer.log())
    assert status == 0, peer.log()
    startup = next(line for line in peer.log("stdout").splitlines() if " serving " in line)
    processes = f"{cores} workers" if cores > 1 else "1 process"
    assert f"; {processes} (auto: one per core))" in startup, startup


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", ""])
def test_a_bad_workers_flag_is_one_line_naming_the_key(run: Run, tmp_path: Path,
                                                       value: str) -> None:
    """--workers takes what [server] workers takes (a positive number or "auto"); any
    other text is one error line naming the key, and no CA is made."""
    code, out, err = run("serve", "--workers", value)
    assert_one_line_error(code, err, "server.workers: ")
    assert "'auto'" in err and out == ""
    assert not (tmp_path / "acme-ca-data").exists()  # refused before any CA is made
