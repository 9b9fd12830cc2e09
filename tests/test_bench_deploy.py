"""Smoke runs of `python -m bench compare` in the layouts docs/deployment.md measures:
acme-ca on a fresh PostgreSQL database, and replicas behind haproxy. Tiny runs (a few
issuances), so that the harness behind the guide's table cannot rot; and the guide's
haproxy sections are the ones the bench runs (bench/haproxy.py renders both).

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and Debian's haproxy.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench import haproxy, loadgen, postgres, replicas, report
from bench.__main__ import main
from bench.http01 import Http01Responder
from bench.peers import Peer
from tests.required import missing, require_program

GUIDE = Path(__file__).parent.parent / "docs" / "deployment.md"
N, C = 12, 4

needs_haproxy = pytest.mark.usefixtures("haproxy_installed")


@pytest.fixture
def haproxy_installed() -> str:
    """Debian's haproxy; the test is skipped without it (failed under CI=true)."""
    return require_program("haproxy")


async def _databases_named(name: str) -> int:
    connection = await asyncpg.connect(f"{postgres.SERVER}/postgres")
    try:
        return await connection.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1",
                                         name)
    finally:
        await connection.close()


async def _issue(peer: Peer, responder: Http01Responder) -> dict[str, Any]:
    """N issuances at C through ``peer``, stopped afterwards; its run record, checked
    for errors and a clean stop."""
    try:
        stats = await loadgen.run(
            loadgen.RunConfig(directory=peer.directory, ca_bundle=peer.ca_bundle, n=N, c=C,
                              measure=peer.measure()),
            responder,
        )
    finally:
        exit_status = peer.stop()
    rec = report.record(stats, server="acme-ca")
    assert stats.errors == {}, (rec["error_examples"], peer.log()[-3000:])
    problems = [line for line in peer.log().splitlines() if " ERROR " in line]
    assert (exit_status, peer.log_problems()) == (0, {}), (problems, peer.log()[-3000:])
    return rec


@needs_haproxy
async def test_replicas_on_one_sqlite_file_behind_haproxy(tmp_path: Path) -> None:
    """Two replicas, one database file: round robin spreads the issuances over both, the
    server CPU is theirs (two processes), haproxy's is measured beside it."""
    names = [loadgen.DEFAULT_NAMES.format(i=i) for i in range(N)]
    async with Http01Responder() as responder:
        peer = await replicas.start_replicas(tmp_path, responder.port, names, replicas=2)
        rec = await _issue(peer, responder)
    assert rec["server_processes"] == 2 and rec["proxy_processes"] == 1
    assert rec["server_cpu_s"] > 0 and rec["proxy_cpu_s"] >= 0
    assert rec["total_cpu_ms_per_issuance"] >= rec["server_cpu_ms_per_issuance"]
    for replica in ("acme-ca-1", "acme-ca-2"):  # each signed some of them
        log = (tmp_path / f"{replica}.stderr").read_text()
        assert re.search(r"certificate \w+ for \d+\.bench\.bluerobin\.local", log), replica
    assert "is DOWN" not in (tmp_path / "haproxy.stderr").read_text()  # /readyz checks pass


@needs_haproxy
def test_compare_on_postgresql_replicas(tmp_path: Path) -> None:
    """`compare --acme-ca-storage postgresql --acme-ca-replicas 2`: every issuance
    succeeds, PostgreSQL's backends and haproxy are measured beside the replicas, the
    summary has the ratio against Pebble, and the run's database is dropped after it."""
    out = tmp_path / "out.jsonl"
    argv = ["compare", "-n", str(N), "-c", str(C), "--runs", "1", "--json", str(out),
            "--workdir", str(tmp_path), "--acme-ca-storage", "postgresql",
            "--acme-ca-replicas", "2"]
    assert main(argv) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    runs = {r["server"]: r for r in records if r["kind"] == "run"}
    ours = runs["acme-ca"]
    assert ours["ok"] == N and ours["errors"] == {}
    assert ours["setup"] == "PostgreSQL, 2 replica(s) behind haproxy"
    assert ours["server_processes"] == 2
    assert ours["database_cpu_s"] > 0 and ours["database_processes"] >= 1
    assert "proxy_cpu_s" in ours
    assert asyncio.run(_databases_named(ours["database"])) == 0
    if "pebble" in runs:  # Debian's pebble: the ratio is the point of the comparison
        ratio = next(r for r in records if r["kind"] == "ratio")
        assert ratio["issuances_per_s"] > 0 and ratio["total_cpu_ms_per_issuance"] > 0


async def test_one_acme_ca_on_postgresql(tmp_path: Path) -> None:
    """The PostgreSQL row without haproxy: one server on a fresh database."""
    names = [loadgen.DEFAULT_NAMES.format(i=i) for i in range(N)]
    async with Http01Responder() as responder, postgres.fresh_database() as database:
        peer = await replicas.start_acme_ca(tmp_path, responder.port, names, database=database)
        rec = await _issue(peer, responder)
    assert rec["database_cpu_s"] > 0 and "proxy_cpu_s" not in rec
    assert await _databases_named(database) == 0


def _guide_haproxy_block(name: str = "sections") -> str:
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- haproxy: {name} -->\n```\n(.*?)```", text, re.S)
    assert match, f"docs/deployment.md lost its haproxy {name} block"
    return match.group(1)


def test_guide_haproxy_sections_are_the_benchs() -> None:
    """The haproxy.cfg lines the guide shows are what bench/haproxy.py renders (and runs,
    on loopback ports) for the guide's three replicas."""
    servers = [(f"ca{i}", f"10.0.0.1{i}:8555") for i in (1, 2, 3)]
    expected = haproxy.sections("10.0.0.10:443", servers, "/etc/haproxy/acme-ca-root.crt")
    assert _guide_haproxy_block() == expected


@needs_haproxy
def test_guide_haproxy_sections_parse_after_debians_config(tmp_path: Path) -> None:
    """Added to Debian's /etc/haproxy/haproxy.cfg (its global and defaults: mode http),
    the guide's sections, the ACME ones and the CRL ones, are valid as they are (the
    root certificate put in place)."""
    debian = Path("/etc/haproxy/haproxy.cfg")
    if not debian.exists():
        missing("no Debian haproxy.cfg here (Debian's haproxy package installs it)")
    root = tmp_path / "acme-ca-root.crt"
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root)
    block = _guide_haproxy_block().replace("/etc/haproxy/acme-ca-root.crt", str(root))
    # and the plain-HTTP sections of the CRLs and OCSP (RFC 5280 4.2.1.13: http://)
    block += "\n" + _guide_haproxy_block("revocation")
    (tmp_path / "acme-ca.cfg").write_text(block, encoding="utf-8")
    result = haproxy.check_files([debian, tmp_path / "acme-ca.cfg"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
