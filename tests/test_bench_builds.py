"""`python -m bench compare` with several acme-ca builds side by side (bench/builds.py):
the intermediate key in a file or on a SoftHSM2 token the run makes, of a chosen type,
from this tree or another one; each build a server of its own in the records, with its
own ratio to Pebble.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bench import builds, report
from bench.__main__ import main
from tests.required import require_program
from tests.softhsm import softhsm_module

N, C = 6, 2


def test_default_is_the_one_build_named_acme_ca() -> None:
    """Without the flags a comparison is what it always was: one "acme-ca", bootstrapped
    by serve (the names docs/performance.md's older tables and the deploy tests use)."""
    assert builds.parse_builds("file", None, None) == [builds.DEFAULT]
    assert builds.DEFAULT.name == "acme-ca" and not builds.DEFAULT.needs_init


def test_every_combination_is_a_build_named_for_what_sets_it_apart(tmp_path: Path) -> None:
    (tmp_path / "old" / "acme_ca").mkdir(parents=True)
    (tmp_path / "old" / "acme_ca" / "__init__.py").write_text("")
    found = builds.parse_builds("file,token", "ec-p384,ec-p256", [f"old={tmp_path / 'old'}"])
    assert [b.name for b in found] == [
        "acme-ca (file key, ec-p384)", "acme-ca (file key, ec-p256)",
        "acme-ca (token key, ec-p384)", "acme-ca (token key, ec-p256)",
        "acme-ca[old] (file key, ec-p384)", "acme-ca[old] (file key, ec-p256)",
        "acme-ca[old] (token key, ec-p384)", "acme-ca[old] (token key, ec-p256)",
    ]
    assert all(b.needs_init for b in found)
    assert found[-1].tree == (tmp_path / "old").resolve() and found[0].tree is None
    tree_only = builds.parse_builds("file", None, [f"old={tmp_path / 'old'}"])
    assert [b.name for b in tree_only] == ["acme-ca (file key)", "acme-ca[old] (file key)"]
    assert not any(b.needs_init for b in tree_only)  # serve bootstraps, in each tree


@pytest.mark.parametrize(("keys", "types", "trees", "message"), [
    ("file,disk", None, None, "--intermediate-key: disk"),
    ("", None, None, "--intermediate-key: nothing"),
    ("token", "ec-p521", None, "--intermediate-key-type: ec-p521"),
    ("file", None, ["nolabel"], "LABEL=PATH expected"),
    ("file", None, ["x=/nonexistent"], "no acme_ca/ package"),
])
def test_wrong_flags_are_one_line(keys: str, types: str | None, trees: list[str] | None,
                                  message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        builds.parse_builds(keys, types, trees)
    assert "\n" not in str(caught.value)


def _run(server: str, c: int, run: int, rate: float) -> dict[str, object]:
    return {"kind": "run", "server": server, "c": c, "n": 10, "ok": 10, "run": run,
            "errors": {}, "issuances_per_s": rate, "server_cpu_ms_per_issuance": 10 / rate,
            "total_cpu_ms_per_issuance": 10 / rate, "p99_total_ms": 1000 / rate}


def test_each_build_has_its_ratios_to_pebble_and_to_the_first_build() -> None:
    records = [_run(server, 8, run, rate) for run in (1, 2)
               for server, rate in (("acme-ca (file key)", 100.0),
                                    ("acme-ca (token key)", 50.0), ("pebble", 200.0))]
    summaries = report.summarise(records)
    ratios = {r["of"]: r for r in summaries if r["kind"] == "ratio"}
    assert set(ratios) == {"acme-ca (file key)/pebble", "acme-ca (token key)/pebble",
                           "acme-ca (token key)/acme-ca (file key)"}
    assert ratios["acme-ca (file key)/pebble"]["issuances_per_s"] == 0.5
    assert ratios["acme-ca (token key)/pebble"]["issuances_per_s"] == 0.25
    against_file = ratios["acme-ca (token key)/acme-ca (file key)"]
    assert against_file["issuances_per_s"] == 0.5
    assert against_file["total_cpu_ms_per_issuance_by_run"]["median"] == 2.0
    table = report.format_summary(summaries, markdown=True).splitlines()
    rows = [line.split(" | ")[0] for line in table if line.startswith("| acme-ca")
            or line.startswith("| pebble")]
    assert rows == ["| acme-ca (file key)", "| acme-ca (token key)", "| pebble"]
    for line in ("- C=8 acme-ca (token key) / pebble: issuances/s x0.25 (0.25-0.25)",
                 "- C=8 acme-ca (token key) / acme-ca (file key): issuances/s x0.50"):
        assert any(row.startswith(line) for row in table), line


def _curve(certificate: Path) -> str:
    key = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key.curve.name


def test_compare_runs_a_file_key_and_a_token_key_side_by_side(tmp_path: Path) -> None:
    """A smoke run of `compare --intermediate-key file,token --intermediate-key-type
    ec-p256`: both builds issue every certificate; the token build's intermediate is
    the requested type with no key file in its data directory, the token's objects in
    the run's own SoftHSM2 directory; the file build's key is a file."""
    require_program("softhsm2-util")
    softhsm_module()
    out = tmp_path / "out.jsonl"
    argv = ["compare", "-n", str(N), "-c", str(C), "--runs", "1", "--servers", "acme-ca",
            "--intermediate-key", "file,token", "--intermediate-key-type", "ec-p256",
            "--json", str(out), "--workdir", str(tmp_path), "--keep"]
    assert main(argv) == 0
    runs = {r["server"]: r for r in map(json.loads, out.read_text().splitlines())
            if r["kind"] == "run"}
    assert set(runs) == {"acme-ca (file key, ec-p256)", "acme-ca (token key, ec-p256)"}
    for rec in runs.values():
        assert (rec["ok"], rec["errors"], rec["server_log_problems"]) == (N, {}, {})
    assert runs["acme-ca (token key, ec-p256)"]["intermediate_key"] == "token"
    [root] = tmp_path.glob("acme-ca-bench-*")
    token_run = root / f"acme-ca-token-key-ec-p256-c{C}-run1-1"
    file_run = root / f"acme-ca-file-key-ec-p256-c{C}-run1-1"
    assert _curve(token_run / "data" / "ca" / "intermediate-ca.crt") == "secp256r1"
    assert _curve(file_run / "data" / "ca" / "intermediate-ca.crt") == "secp256r1"
    assert (file_run / "data" / "ca" / "intermediate-ca.key").exists()
    assert [p for p in (token_run / "data").rglob("*intermediate*") if ".key" in p.name] == []
    assert list((token_run / "softhsm" / "tokens").rglob("*.object"))


def test_another_interpreter_runs_this_tree_beside_the_default(tmp_path: Path) -> None:
    """`compare --acme-ca-python LABEL=PATH` (how docs/performance.md weighs newer
    Pythons): the default build and this tree under the interpreter at PATH, each a
    server of its own whose records name the interpreter that ran it."""
    other = sys.executable  # this virtualenv's own Python, named as another one
    found = builds.parse_builds("file", None, None, [f"other={other}"])
    assert [b.name for b in found] == ["acme-ca", "acme-ca{other}"]
    assert found[1].interpreter == other and found[1].tree is not None
    out = tmp_path / "out.jsonl"
    argv = ["compare", "-n", str(N), "-c", str(C), "--runs", "1", "--servers", "acme-ca",
            "--acme-ca-python", f"other={other}", "--json", str(out),
            "--workdir", str(tmp_path)]
    assert main(argv) == 0
    runs = {r["server"]: r for r in map(json.loads, out.read_text().splitlines())
            if r["kind"] == "run"}
    assert runs["acme-ca{other}"]["python"] == other
    assert all(rec["ok"] == N and rec["errors"] == {} for rec in runs.values())


@pytest.mark.parametrize("spec", ["nolabel", "x=/nonexistent/python", "x={not_executable}"])
def test_a_wrong_interpreter_is_one_line(spec: str, tmp_path: Path) -> None:
    """--acme-ca-python without LABEL=, naming no file, or naming a file that is not
    executable: one line naming the flag, before any server starts."""
    (tmp_path / "python").write_text("")
    spec = spec.format(not_executable=tmp_path / "python")
    with pytest.raises(ValueError, match="--acme-ca-python") as caught:
        builds.parse_builds("file", None, None, [spec])
    assert "\n" not in str(caught.value)
