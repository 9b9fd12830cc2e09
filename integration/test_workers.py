"""`acme-ca serve --workers N`: processes sharing one port, stopped together."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from integration.conftest import Server, stop_process, until

pytestmark = pytest.mark.integration


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in (
        Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0])


def gone(pids: list[int]) -> bool:
    return not any(alive(p) for p in pids)


def test_two_workers_serve_and_stop_together(serve_factory: Callable[..., Server]) -> None:
    """Both answer; one of them, through the store, holds the background lease (each
    tried before it listened) and gives it up when stopped."""
    server = serve_factory(None, None, "--workers", "2")
    workers = children_of(server.process.pid)
    assert len(workers) == 2, workers
    for _ in range(20):  # new connections each time: the kernel spreads them over both
        assert server.get("/health").status == 200
        assert server.get("/directory").status == 200
    # The worker that took the lease says so before it listens, but the one answering
    # may be the other: the line can still be on its way when the requests are done.
    until(lambda: "took the background lease" in server.log("stderr"),
          "a worker said it took the background lease")
    assert server.log("stderr").count("took the background lease") == 1, server.log("stderr")
    assert stop_process(server.process) == 0
    until(lambda: gone(workers), "both workers exited", 10)
    assert "released the background lease" in server.log("stderr")


def test_a_failed_worker_stops_the_others(serve_factory: Callable[..., Server]) -> None:
    """A service manager sees one failure and restarts the whole, never half a server."""
    server = serve_factory(None, None, "--workers", "2")
    first, second = children_of(server.process.pid)
    os.kill(first, signal.SIGKILL)
    assert server.process.wait(timeout=15) != 0
    until(lambda: gone([second]), "the other worker exited", 10)
