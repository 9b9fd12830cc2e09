"""`python -m bench compare --client ...`: the clients people run, against a real
acme-ca (and Pebble beside it for certbot's acme library): certbot's acme library
(bench/acmelib.py), lego and certbot (bench/programs.py). Each run issues real
certificates (RFC 8555 7.4: newOrder, finalize, download; 7.5.1: http-01 answered
on the client's side, 8.3) with the names resolved over DNS from pebble-challtestsrv.
Under CI a missing lego, certbot, pebble or pebble-challtestsrv fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from bench import acmelib, loadgen, programs, replicas, report
from bench.__main__ import _cells, main
from bench.http01 import Http01Responder
from tests.required import missing, require_program
from tests.waiting import until, within

N, C = 6, 2

# what every run record of the lean generator holds (bench/report.py), server measured
LOADGEN_KEYS = set(report.record(loadgen.RunStats(loadgen.RunConfig(directory="x")))) | {
    "server_cpu_s", "server_cpu_ms_per_issuance", "server_processes", "server_peak_rss_mb",
    "total_cpu_ms_per_issuance", "server", "run", "attempt", "complete",
}


def _compare(tmp_path: Path, *argv: str) -> list[dict[str, Any]]:
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "out.jsonl"
    assert main(["compare", "--runs", "1", "--json", str(out), "--workdir", str(tmp_path),
                 "--keep", *argv]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def _validation(tmp_path: Path, cell: str) -> dict[str, Any]:
    """The [validation] table of the acme-ca a cell ran (its data directory is kept)."""
    [config] = tmp_path.glob(f"acme-ca-bench-*/{cell}/acme-ca.toml")
    return tomllib.loads(config.read_text())["validation"]


def test_acme_lib_against_acme_ca_and_pebble(tmp_path: Path) -> None:
    """certbot's acme library: every issuance is certbot's 7 POSTs (newOrder,
    POST-as-GET of the authorization, challenge, one poll of the authorization, finalize,
    one poll of the order, the certificate: RFC 8555 6.3, 7.4, 7.5.1), the record has the
    lean generator's fields plus "client", the server's CPU is measured, acme-ca resolves
    the names over DNS as Pebble does, and the client's table has its ratio to Pebble."""
    for program in ("pebble", "pebble-challtestsrv"):
        require_program(program)
    records = _compare(tmp_path, "--client", "acme-lib", "-n", str(N), "-c", str(C))
    runs = {r["server"]: r for r in records if r["kind"] == "run"}
    assert set(runs) == {"acme-ca", "pebble"}
    for rec in runs.values():
        assert set(rec) >= LOADGEN_KEYS, LOADGEN_KEYS - set(rec)
        assert (rec["client"], rec["resolve"]) == ("acme-lib", "dns")
        assert (rec["ok"], rec["errors"]) == (N, {}), rec["error_examples"]
        assert rec["server_cpu_ms_per_issuance"] > 0 and rec["client_cpu_s"] > 0
        assert rec["validations_served"] >= N
        for step in loadgen.STEPS:
            assert rec["latency_ms"][step]["p50"] > 0, step
    assert runs["acme-ca"]["requests_per_issuance"] == 7  # the server answers at once
    assert runs["acme-ca"]["polls_per_issuance"] == 2
    assert runs["pebble"]["requests_per_issuance"] >= 7
    validation = _validation(tmp_path, f"acme-lib-acme-ca-c{C}-run1-1")
    assert "hosts" not in validation and len(validation["resolvers"]) == 1
    ratio = next(r for r in records if r["kind"] == "ratio")
    assert ratio["of"] == "acme-ca/pebble" and ratio["server_cpu_ms_per_issuance"] > 0
    assert {r["client"] for r in records if r["kind"] == "summary"} == {"acme-lib"}


def test_the_lean_generator_keeps_its_hosts_table(tmp_path: Path) -> None:
    """`--client loadgen` (the default) keeps [validation.hosts], the way the figures of
    docs/performance.md were measured; `--resolve dns` asks for the resolver."""
    require_program("pebble-challtestsrv")
    records = _compare(tmp_path, "--servers", "acme-ca", "-n", "2", "-c", "1",
                       "--client", "loadgen")
    [rec] = [r for r in records if r["kind"] == "run"]
    assert (rec["client"], rec["resolve"], rec["ok"]) == ("loadgen", "hosts", 2)
    assert "resolvers" not in _validation(tmp_path, "acme-ca-c1-run1-1")
    dns = tmp_path / "dns"
    records = _compare(dns, "--servers", "acme-ca", "-n", "2", "-c", "1", "--resolve", "dns")
    assert [r["ok"] for r in records if r["kind"] == "run"] == [2]
    assert "hosts" not in _validation(dns, "acme-ca-c1-run1-1")


def _program(name: str) -> None:
    require_program("pebble-challtestsrv")
    if not programs.installed(name):
        missing(f"{name} is not installed (needed by this test)")


@pytest.mark.parametrize("program", programs.PROGRAMS)
def test_program_runs_against_acme_ca(tmp_path: Path, program: str) -> None:
    """lego run / certbot certonly --standalone, twice in a row: each run is a complete
    run of the program (account, order, http-01 on its own port, certificate), its wall
    time recorded; the server's CPU per certificate is measured."""
    _program(program)
    records = _compare(tmp_path, "--servers", "acme-ca", "--client", program,
                       "--client-runs", "2", "-c", "8")
    [rec] = [r for r in records if r["kind"] == "run"]
    assert (rec["ok"], rec["errors"]) == (2, {}), rec["error_examples"]
    assert (rec["client"], rec["c"], rec["resolve"]) == (program, 1, "dns")
    assert rec["client_version"]
    assert rec["server_cpu_ms_per_issuance"] > 0
    low, mid, high = (rec["run_s"][k] for k in ("min", "p50", "max"))
    assert 0 < low <= mid <= high
    assert rec["p50_total_ms"] == pytest.approx(1000 * mid, abs=1)
    if program == "certbot":  # its own fixed sleeps: 1 s before each of two polls
        assert low > 2
    name = loadgen.DEFAULT_NAMES.format(i=1)
    [run] = tmp_path.glob(f"acme-ca-bench-*/{program}-acme-ca-c1-run1-1/{program}/run1")
    saved = {"lego": f"certificates/{name}.crt", "certbot": f"config/live/{name}/cert.pem"}
    leaf = x509.load_pem_x509_certificate((run / saved[program]).read_bytes())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [name]


async def test_a_failed_program_run_says_why(tmp_path: Path) -> None:
    """A run whose http-01 answer the server cannot fetch (the server's http01_port is
    another port) fails, counted by exit status, with the program's last stderr line."""
    _program("lego")
    names = [loadgen.DEFAULT_NAMES.format(i=0)]
    peer = await replicas.start_acme_ca(tmp_path / "acme-ca", replicas.free_port(), names)
    try:
        config = loadgen.RunConfig(directory=peer.directory, ca_bundle=peer.ca_bundle, n=1,
                                   c=1, measure=peer.measure())
        stats = await programs.run("lego", config, replicas.free_port(), tmp_path / "lego")
    finally:
        peer.stop()
    assert stats.ok == 0 and stats.errors == {"exit-1": 1}
    assert names[0] in stats.examples["exit-1"]


@contextlib.asynccontextmanager
async def silent_directory() -> AsyncIterator[tuple[str, list[asyncio.StreamWriter]]]:
    """A directory URL whose server accepts every connection and never answers, and the
    connections it took (closed, with the server, on the way out)."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/dir", connections
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_program_run_that_goes_quiet_is_stopped_as_stalled(tmp_path: Path) -> None:
    """A run that has not ended after ``stall_s`` (here: the directory's server accepts
    the connection and never answers) is killed and counted as "stalled", with the
    program's last stderr line, instead of waiting for the program's own timeout."""
    if not programs.installed("lego"):
        missing("lego is not installed (needed by this test)")
    async with silent_directory() as (directory, connections):
        config = loadgen.RunConfig(directory=directory, n=1, c=1, stall_s=5.0)
        stats = await programs.run("lego", config, replicas.free_port(), tmp_path / "lego")
    assert connections, "lego never connected"
    assert stats.ok == 0 and stats.errors == {"stalled": 1}, stats.examples
    assert stats.examples["stalled"] == programs.last_line(tmp_path / "lego" / "run0" / "stderr")


async def test_run_drives_a_running_server_with_the_acme_lib(tmp_path: Path) -> None:
    """`bench run --client acme-lib` against an acme-ca already serving, whose http-01
    port is the one given: every issuance succeeds, the server's CPU is measured."""
    port = replicas.free_port()
    names = [loadgen.DEFAULT_NAMES.format(i=i) for i in range(2)]
    peer = await replicas.start_acme_ca(tmp_path / "acme-ca", port, names)
    out = tmp_path / "out.jsonl"
    try:
        [pid] = [p.pid for p in peer.processes.values()]
        argv = ["run", "--client", "acme-lib", "--directory", peer.directory, "--ca-bundle",
                str(peer.ca_bundle), "--http-port", str(port), "-n", "2", "-c", "1",
                "--server-pid", str(pid), "--json", str(out)]
        status = await asyncio.to_thread(main, argv)
    finally:
        peer.stop()
    [rec] = [json.loads(line) for line in out.read_text().splitlines()]
    assert status == 0, rec["error_examples"]
    assert (rec["client"], rec["ok"], rec["requests_per_issuance"]) == ("acme-lib", 2, 7)
    assert rec["server_cpu_ms_per_issuance"] > 0


def test_a_program_runs_in_one_concurrency_only_whatever_c_says() -> None:
    """`compare -c 8,8 --client loadgen,lego`: the lean generator runs at each C given,
    lego once per run at C=1 (each of its runs is a whole program run), not once per
    -c entry that happens to equal the first."""
    turns = _cells(["acme-ca", "pebble"], ["loadgen", "lego"], [8, 8])
    assert turns == [
        (8, [("loadgen", "acme-ca", 8), ("loadgen", "pebble", 8),
             ("lego", "acme-ca", 1), ("lego", "pebble", 1)]),
        (8, [("loadgen", "acme-ca", 8), ("loadgen", "pebble", 8)]),
    ]


async def test_acme_lib_clients_that_exit_are_counted_with_their_last_words(
    tmp_path: Path,
) -> None:
    """bench/acmelib.py: clients whose process exits before its result (here: nothing
    listens at the directory's port, so registering fails) fail the whole run as
    "client-exited", with the exit status and the last line the clients wrote."""
    config = loadgen.RunConfig(directory=f"https://127.0.0.1:{replicas.free_port()}/dir",
                               n=3, c=1, stall_s=60)
    stats = await acmelib.run(config, Http01Responder(), stderr=tmp_path / "clients.log")
    assert stats.ok == 0 and stats.errors == {"client-exited": 3}, stats.examples
    said = stats.examples["client-exited"]
    assert said.startswith("the clients exited 1: ") and "onnection" in said, said


async def test_acme_lib_clients_that_go_quiet_are_stopped_as_stalled() -> None:
    """bench/acmelib.py: clients that say nothing for ``stall_s`` (here: the directory's
    server accepts the connection and never answers) are killed and the run counted as
    "stalled", instead of waiting for the clients' own 30 s timeout. ``stall_s`` counts
    from the child's start, its imports included (0.3 s idle, over 1 s on a loaded
    2-core machine): 5 s, so that the clients connect before it ends."""
    async with silent_directory() as (directory, connections):
        config = loadgen.RunConfig(directory=directory, n=2, c=1, stall_s=5.0)
        started = asyncio.get_running_loop().time()
        stats = await acmelib.run(config, Http01Responder())
        took = asyncio.get_running_loop().time() - started
    assert connections, "the clients never connected"
    assert stats.ok == 0 and stats.errors == {"stalled": 2}, stats.examples
    assert stats.examples["stalled"] == "nothing from the clients for 5 s"
    assert took < 20, took  # not the clients' own 30 s timeout


async def test_the_responder_waits_for_a_token_still_in_the_pipe() -> None:
    """bench/acmelib.py's clients tell their tokens through a pipe: with ``wait_s`` the
    responder holds a request for a token it does not know yet until the token is added
    (then 200 with its key authorization), and says 404 only once ``wait_s`` is over."""
    async with Http01Responder() as responder, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{responder.port}/.well-known/acme-challenge/"
        responder.wait_s = 60.0
        asking = asyncio.ensure_future(session.get(url + "late"))
        await until(lambda: "late" in responder._waiting, "the request to wait for its token")
        responder.add("late", "late.key-authorization")
        async with await within(asking, "the answer once the token is added") as answer:
            assert (answer.status, await answer.text()) == (200, "late.key-authorization")
        responder.wait_s = 0.01
        async with session.get(url + "never") as answer:
            assert answer.status == 404
    assert (responder.served, responder.missed) == (1, 1)
    assert responder._waiting == {}  # the token never added is not kept for the run
