"""CI smoke run of the load generator (bench/), so that it cannot rot.

Starts `acme-ca serve` as a subprocess (fresh data directory, ports the OS picks, http-01
sent to the generator's own responder), runs the generator in-process with N=20, C=4,
and checks every issuance succeeded and the JSON record parses. Takes a few seconds.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from bench import loadgen, replicas, report
from bench.http01 import Http01Responder

N, C = 20, 4


async def test_generator_issues_against_acme_ca(tmp_path: Path) -> None:
    names = [loadgen.DEFAULT_NAMES.format(i=i) for i in range(N)]
    async with Http01Responder() as responder:
        peer = await replicas.start_acme_ca(tmp_path / "acme-ca", responder.port, names)
        try:
            config = loadgen.RunConfig(
                directory=peer.directory,
                ca_bundle=peer.ca_bundle,
                n=N,
                c=C,
                measure=peer.measure(),
                label="smoke",
            )
            stats = await loadgen.run(config, responder)
        finally:
            exit_status = peer.stop()
    rec = report.record(stats, server="acme-ca")
    assert stats.errors == {}, (rec["error_examples"], peer.log()[-3000:])
    assert stats.ok == N
    assert exit_status == 0, peer.log()[-3000:]
    assert peer.log_problems() == {}, peer.log()[-3000:]

    out = io.StringIO()
    report.write_json(out, rec)
    parsed = json.loads(out.getvalue())
    assert parsed["ok"] == N and parsed["errors"] == {}
    assert parsed["issuances_per_s"] > 0
    assert parsed["server_cpu_s"] > 0 and parsed["server_peak_rss_mb"] > 0
    for step in loadgen.STEPS:
        assert parsed["latency_ms"][step]["p50"] > 0, step
    assert stats.validations_served >= N  # the server really fetched every token
    assert "acme-ca: n=20 c=4" in report.format_run(parsed)
