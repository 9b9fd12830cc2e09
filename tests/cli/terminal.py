"""Running `acme-ca` (or `python -m bench`) as its own process with standard error on a
pseudo-terminal and standard output on a pipe: what a person at a terminal sees on
stderr (the progress bars), and what a script reads on stdout."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 120  # seconds: RSA 4096 key generation included


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str  # as the terminal received it, escape sequences and all


def run_module(module: str, *argv: object, cwd: Path, tty: bool,
               typed: str | None = None) -> Ran:
    """``python -m module argv...`` in ``cwd``; standard error a terminal when ``tty``,
    else a pipe; with ``typed``, standard input is that terminal too, on which the
    line ``typed`` is typed."""
    command = [sys.executable, "-m", module, *map(str, argv)]
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    env.pop("ACME_CA_CONFIG", None)
    if not tty:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=TIMEOUT, check=False)
        return Ran(done.returncode, done.stdout, done.stderr)
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                   stderr=follower, text=True,
                                   stdin=subprocess.DEVNULL if typed is None else follower)
    finally:
        os.close(follower)
    if typed is not None:
        os.write(leader, typed.encode() + b"\n")  # the terminal keeps it until it is read
    received = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    stdout, _ = process.communicate(timeout=TIMEOUT)
    return Ran(process.returncode, stdout, received.decode("utf-8", "replace"))
