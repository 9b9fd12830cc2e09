"""The ACME programs people run, as clients of a comparison: lego and certbot.

``run`` makes N sequential runs of one program against one server, each a complete
run as a user makes it, in a directory of its own (so each registers its account,
orders, answers http-01 on its own port and saves the certificate):

- lego (Debian's /usr/bin/lego): ``lego --server DIR --accept-tos --email E --domains
  NAME --path D --http --http.port 127.0.0.1:P run``, trusting the server's TLS chain
  through ``LEGO_CA_CERTIFICATES``;
- certbot (this virtualenv's): ``certbot certonly --standalone --http-01-port P
  --http-01-address 127.0.0.1 --server DIR -d NAME --agree-tos
  --register-unsafely-without-email --non-interactive`` with its own --config-dir,
  --work-dir and --logs-dir, trusting the chain through ``REQUESTS_CA_BUNDLE``.
  certbot's own 1 s sleeps (``poll_authorizations``, ``poll_finalization``) are kept:
  users wait for them too.

The server's http-01 port is P (acme-ca's ``[validation] http01_port``, Pebble's
httpPort). A run's wall time is its "total" step (so p50/p99 issuance ms of the
summary are run times), ``run_s`` holds p50, min and max in seconds; server CPU is
sampled around the N runs (their account registrations included) and divided by the
certificates issued; a failed run counts as ``exit-<status>`` with its last stderr line.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import peers
from bench.loadgen import RunConfig, RunStats, sample_groups
from bench.report import percentile

PROGRAMS = ("lego", "certbot")
EMAIL = "bench@bluerobin.local"


def executable(program: str) -> str | None:
    """lego from PATH; certbot from this virtualenv (beside its python), else PATH."""
    if program == "certbot":
        beside = Path(sys.executable).parent / "certbot"
        if beside.exists():
            return str(beside)
    return shutil.which(program)


def installed(program: str) -> bool:
    """Whether ``program`` can be run (``executable``)."""
    return executable(program) is not None


def run_title(program: str) -> str:
    """What a table's title calls one run of ``program``: "lego run"."""
    return "lego run" if program == "lego" else "certbot certonly --standalone"


def version(program: str) -> str:
    """The first line ``program --version`` prints, for the records; "" if it cannot."""
    path = executable(program)
    if path is None:
        return ""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else ""


def argv(program: str, directory: str, name: str, http_port: int, home: Path) -> list[str]:
    """One complete run of ``program`` for ``name`` in ``home``."""
    path = executable(program) or program
    if program == "lego":
        return [path, "--server", directory, "--accept-tos", "--email", EMAIL,
                "--domains", name, "--path", str(home), "--http",
                "--http.port", f"127.0.0.1:{http_port}", "run"]
    dirs = [arg for kind in ("config", "work", "logs")
            for arg in (f"--{kind}-dir", str(home / kind))]
    return [path, "certonly", "--standalone", "--http-01-port", str(http_port),
            "--http-01-address", "127.0.0.1", "--server", directory, "-d", name,
            "--agree-tos", "--register-unsafely-without-email", "--non-interactive", *dirs]


def environment(program: str, ca_bundle: Path | None) -> dict[str, str]:
    """The bench's environment as every process it starts gets it (``peers.environment``),
    trusting ``ca_bundle`` in the program's own way."""
    if ca_bundle is None:
        return peers.environment()
    trust = "LEGO_CA_CERTIFICATES" if program == "lego" else "REQUESTS_CA_BUNDLE"
    return peers.environment(**{trust: str(ca_bundle)})


def last_line(path: Path) -> str:
    """The last line of a log that is not blank (what a failure is reported with)."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no output)"


async def run(program: str, config: RunConfig, http_port: int, workdir: Path) -> RunStats:
    """``config.n`` sequential runs of ``program`` against ``config.directory``."""
    stats = RunStats(config)
    env = environment(program, config.ca_bundle)
    workdir.mkdir(parents=True, exist_ok=True)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats.before = sample_groups(config.measure)
    start = time.perf_counter()
    for index in range(config.n):
        home = workdir / f"run{index}"
        home.mkdir()
        err = home / "stderr"
        with (home / "stdout").open("wb") as out_file, err.open("wb") as err_file:
            t0 = time.perf_counter()
            child = await asyncio.create_subprocess_exec(
                *argv(program, config.directory, config.names.format(i=index), http_port, home),
                cwd=home, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out_file,
                stderr=err_file)
            try:
                status = await asyncio.wait_for(child.wait(), config.stall_s)
            except TimeoutError:
                child.kill()
                await child.wait()
                status = None
            seconds = time.perf_counter() - t0
        if status == 0:
            stats.ok += 1
            stats.steps["total"].append(seconds)
        else:
            kind = "stalled" if status is None else f"exit-{status}"
            stats.errors[kind] += 1
            stats.examples.setdefault(kind, last_line(err))
    stats.elapsed_s = time.perf_counter() - start
    stats.after = sample_groups(config.measure)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats.client_cpu_s = (children1.ru_utime - children0.ru_utime
                          + children1.ru_stime - children0.ru_stime)
    return stats


def add_run_times(rec: dict[str, Any], stats: RunStats) -> dict[str, Any]:
    """``run_s``: p50, min and max wall seconds of a client run; what a program does not
    tell (its requests and polls) is None, and each run registered an account."""
    times = stats.steps["total"]
    rec.update(accounts=rec["n"], requests=None, requests_per_issuance=None,
               polls_per_issuance=None, nonce_fetches=None, bad_nonce_retries=None)
    rec["run_s"] = {
        "p50": round(percentile(times, 50), 3) if times else None,
        "min": round(min(times), 3) if times else None,
        "max": round(max(times), 3) if times else None,
    }
    return rec
