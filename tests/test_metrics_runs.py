"""The multiprocess metrics directory of `serve --workers N` (issue 13 item 2; review F4
and F5): each run writes under ``<data_dir>/metrics`` in a directory of its own, locked
while it lives, so a second `serve` on the same data directory never removes the first
one's live files; the directories of runs that ended are removed at the next start;
anything unexpected there is one line. The other run is a real process (stopped by its
pid), holding its directory as `serve` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from acme_ca.cli.workers import shared_metrics
from acme_ca.errors import AcmeCaError
from acme_ca.metrics import run_directory

HOLD = """
import sys, time
from pathlib import Path
from acme_ca.metrics import run_directory
run, _ = run_directory(Path(sys.argv[1]))
(run / "counter_1.db").write_bytes(b"live")
print(run, flush=True)
time.sleep(60)
"""


def other_run(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(parent)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def stop(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def test_a_second_run_keeps_the_live_runs_files_and_removes_an_ended_ones(
        tmp_path: Path) -> None:
    """F5: the first run's files survive a second start; once it has ended (killed: no
    cleanup of its own), the next start removes its directory."""
    parent = tmp_path / "metrics"
    process, first = other_run(parent)
    try:
        assert first.parent == parent and first.name.startswith(f"{process.pid}-")
        second, lock = run_directory(parent)
        os.close(lock)
        assert second != first and second.name.startswith(f"{os.getpid()}-")
        assert (first / "counter_1.db").read_bytes() == b"live"
    finally:
        stop(process)
    third, lock = run_directory(parent)
    os.close(lock)
    assert not first.exists() and not second.exists()
    assert sorted(parent.iterdir()) == [third]
    assert oct(third.stat().st_mode & 0o777) == "0o700"


def test_what_is_no_run_directory_is_left_alone(tmp_path: Path) -> None:
    """Files and symlinks under the parent, and names no run has, are never removed."""
    parent = tmp_path / "metrics"
    parent.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (parent / "123-abc").symlink_to(target)
    (parent / "notes").mkdir()
    _, lock = run_directory(parent)
    os.close(lock)
    assert target.exists() and (parent / "123-abc").is_symlink() and (parent / "notes").exists()


@pytest.mark.parametrize("kind", ["file", "dangling symlink"])
def test_a_parent_that_is_no_directory_is_one_line(tmp_path: Path, kind: str) -> None:
    """F5: no internal error (exit 70) when <data_dir>/metrics is not a directory."""
    parent = tmp_path / "metrics"
    if kind == "file":
        parent.write_text("not a directory")
    else:
        parent.symlink_to(tmp_path / "missing")
    with pytest.raises(AcmeCaError, match=f"the metrics directory {parent}: ") as raised:
        shared_metrics(parent)
    assert "\n" not in str(raised.value)
