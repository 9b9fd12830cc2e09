"""Results: one JSON record per run, a text report, and the comparison summary.

A run record (``kind: "run"``) holds everything needed to compare runs later:
configuration, issuances/s, latency percentiles per step (ms), errors by type, server
CPU ms and peak RSS, generator CPU. When the run also measured PostgreSQL's backends
(``database``) or haproxy (``proxy``), their CPU is recorded beside the server's, not in
it, and ``total_cpu_ms_per_issuance`` adds them all up (for Pebble it is the server's).
``compare`` adds ``kind: "summary"`` records (median, min and max over runs, per server
and concurrency) and ``kind: "ratio"`` records: each acme-ca build / pebble, and each
build / the first build when there are several (bench/builds.py: the builds are
servers of their own, "acme-ca" alone by default).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bench.loadgen import STEPS, RunStats

# (record key, label, format) of the figures a comparison summarises
FIGURES = (
    ("issuances_per_s", "issuances/s", "{:.1f}"),
    ("server_cpu_ms_per_issuance", "server CPU ms/issuance", "{:.1f}"),
    ("database_cpu_ms_per_issuance", "PostgreSQL CPU ms/issuance", "{:.1f}"),
    ("proxy_cpu_ms_per_issuance", "haproxy CPU ms/issuance", "{:.1f}"),
    ("total_cpu_ms_per_issuance", "total CPU ms/issuance", "{:.1f}"),
    ("p99_total_ms", "p99 issuance ms", "{:.0f}"),
    ("p50_total_ms", "p50 issuance ms", "{:.0f}"),
    ("server_peak_rss_mb", "server peak RSS MB", "{:.0f}"),
    ("client_cpu_ms_per_issuance", "generator CPU ms/issuance", "{:.1f}"),
)
# shown only when a run measured more than the server itself
BESIDE_SERVER = frozenset(
    {"database_cpu_ms_per_issuance", "proxy_cpu_ms_per_issuance", "total_cpu_ms_per_issuance"}
)
RATIOS = ("issuances_per_s", "server_cpu_ms_per_issuance", "total_cpu_ms_per_issuance",
          "p99_total_ms")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linear between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def machine() -> dict[str, Any]:
    model = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def record(stats: RunStats, **extra: Any) -> dict[str, Any]:
    """The JSON record of one run."""
    cfg, ok = stats.config, stats.ok
    latency = {
        step: {
            "p50": _ms(percentile(stats.steps[step], 50)),
            "p95": _ms(percentile(stats.steps[step], 95)),
            "p99": _ms(percentile(stats.steps[step], 99)),
            "mean": _ms(statistics.fmean(stats.steps[step])) if stats.steps[step] else None,
        }
        for step in STEPS
    }
    rec: dict[str, Any] = {
        "kind": "run",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": cfg.label,
        "directory": cfg.directory,
        "n": cfg.n,
        "c": cfg.c,
        "key": cfg.key,
        "accounts": cfg.accounts or max(1, min(cfg.c, cfg.n)),
        "retry_after_cap_s": cfg.poll.retry_after_cap,
        "ok": ok,
        "errors": dict(stats.errors),
        "error_examples": stats.examples,
        "elapsed_s": round(stats.elapsed_s, 3),
        "setup_s": round(stats.setup_s, 3),
        "issuances_per_s": round(ok / stats.elapsed_s, 2) if stats.elapsed_s else None,
        "latency_ms": latency,
        "p50_total_ms": latency["total"]["p50"],
        "p99_total_ms": latency["total"]["p99"],
        "requests": stats.requests,
        "requests_per_issuance": round(stats.requests / ok, 2) if ok else None,
        "polls_per_issuance": round(stats.polls / ok, 2) if ok else None,
        "reused_authz": stats.reused_authz,
        "bad_nonce_retries": stats.bad_nonce_retries,
        "nonce_fetches": stats.nonce_fetches,
        "validations_served": stats.validations_served,
        "client_cpu_s": round(stats.client_cpu_s, 3),
        "client_cpu_ms_per_issuance": round(1000 * stats.client_cpu_s / ok, 2) if ok else None,
        "machine": machine(),
    }
    total = 0.0
    for group, after in stats.after.items():
        before = stats.before[group]
        cpu = after.cpu_s - before.cpu_s
        total += cpu
        rec.update({
            f"{group}_cpu_s": round(cpu, 3),
            f"{group}_cpu_ms_per_issuance": round(1000 * cpu / ok, 2) if ok else None,
            f"{group}_processes": after.processes,
        })
        if group == "server":
            rec.update(
                server_peak_rss_mb=round(after.hwm_kb / 1024, 1),
                server_rss_mb_before=round(before.rss_kb / 1024, 1),
                server_rss_mb_after=round(after.rss_kb / 1024, 1),
            )
    if stats.after:
        rec["total_cpu_ms_per_issuance"] = round(1000 * total / ok, 2) if ok else None
    rec.update(extra)
    return rec


def _fmt(value: Any, spec: str = "{:.1f}") -> str:
    return "-" if value is None else spec.format(value)


def format_run(rec: dict[str, Any]) -> str:
    lines = [
        f"{rec.get('server') or rec['label'] or rec['directory']}: n={rec['n']} c={rec['c']} "
        f"key={rec['key']} accounts={rec['accounts']}",
        f"  ok {rec['ok']}/{rec['n']} in {rec['elapsed_s']:.2f} s: "
        f"{_fmt(rec['issuances_per_s'])} issuances/s; "
        f"{_fmt(rec['requests_per_issuance'])} requests, "
        f"{_fmt(rec['polls_per_issuance'], '{:.2f}')} polls per issuance",
        "  latency ms        p50      p95      p99     mean",
    ]
    for step in STEPS:
        lat = rec["latency_ms"][step]
        if lat["p50"] is None:  # a program (bench/programs.py) times its whole run only
            continue
        cells = " ".join(_fmt(lat[k], "{:8.1f}") for k in ("p50", "p95", "p99", "mean"))
        lines.append(f"  {step:<12} {cells}")
    if rec.get("run_s"):
        run = rec["run_s"]
        lines.append(f"  {rec['client']} run s: p50 {_fmt(run['p50'], '{:.2f}')}, "
                     f"min {_fmt(run['min'], '{:.2f}')}, max {_fmt(run['max'], '{:.2f}')}")
    if "server_cpu_s" in rec:
        lines.append(
            f"  server: {rec['server_cpu_s']:.2f} CPU s, "
            f"{_fmt(rec['server_cpu_ms_per_issuance'])} CPU ms/issuance, "
            f"peak RSS {rec['server_peak_rss_mb']:.1f} MB "
            f"(RSS {rec['server_rss_mb_before']:.1f} -> {rec['server_rss_mb_after']:.1f} MB, "
            f"{rec['server_processes']} process(es))"
        )
    for group, name in (("database", "PostgreSQL"), ("proxy", "haproxy")):
        if f"{group}_cpu_s" in rec:
            lines.append(
                f"  {name}: {rec[f'{group}_cpu_s']:.2f} CPU s, "
                f"{_fmt(rec[f'{group}_cpu_ms_per_issuance'])} CPU ms/issuance "
                f"({rec[f'{group}_processes']} process(es))"
            )
    lines.append(
        f"  generator: {_fmt(rec['client_cpu_ms_per_issuance'])} CPU ms/issuance; "
        f"badNonce retries {_fmt(rec['bad_nonce_retries'], '{}')}, "
        f"newNonce {_fmt(rec['nonce_fetches'], '{}')}"
    )
    if rec["errors"]:
        lines.append("  errors: " + ", ".join(f"{k} x{v}" for k, v in rec["errors"].items()))
        for kind, example in rec["error_examples"].items():
            lines.append(f"    {kind}: {example}")
    else:
        lines.append("  errors: none")
    return "\n".join(lines)


def write_json(stream: TextIO, rec: dict[str, Any]) -> None:
    stream.write(json.dumps(rec, sort_keys=True) + "\n")
    stream.flush()


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "min": None, "max": None}
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (server, c): median/min/max of each figure, and each acme-ca build's ratios
    to Pebble."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rec in records:
        if rec.get("kind") == "run":
            groups.setdefault((rec["server"], rec["c"]), []).append(rec)
    out: list[dict[str, Any]] = []
    for (server, c), recs in groups.items():
        good = [r for r in recs if r.get("complete", r["ok"] == r["n"])]
        errors: Counter[str] = Counter()
        for r in recs:
            errors.update(r["errors"])
        summary: dict[str, Any] = {
            "kind": "summary",
            "server": server,
            "c": c,
            "n": recs[0]["n"],
            "runs": len(good),  # figures are over complete runs only
            "failed_runs": len(recs) - len(good),
            "errors": dict(errors),
        }
        for key, _, _ in FIGURES:
            summary[key] = _spread([r[key] for r in good if r.get(key) is not None])
        out.append(summary)
    by = {(s["server"], s["c"]): s for s in out}
    builds = [server for server, _ in dict.fromkeys(groups) if server != "pebble"]
    for (server, c), summary in list(by.items()):
        if server == "pebble":
            continue
        for base in ("pebble", builds[0]):
            other = by.get((base, c))
            if other is None or base == server:
                continue
            out.append(_ratio_record(summary, other, groups[(server, c)], groups[(base, c)]))
    return out


def _ratio_record(summary: dict[str, Any], base: dict[str, Any], ours: list[dict[str, Any]],
                  theirs: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's figures over another's (Pebble's, or the first acme-ca build's):
    the ratio of the medians, and the spread of the ratios run by run."""
    ratio: dict[str, Any] = {"kind": "ratio", "c": summary["c"], "server": summary["server"],
                             "base": base["server"],
                             "of": f"{summary['server']}/{base['server']}"}
    pairs = _pairs(ours, theirs)
    for key in RATIOS:
        mine, its = summary[key]["median"], base[key]["median"]
        ratio[key] = round(mine / its, 3) if mine is not None and its else None
        ratio[f"{key}_by_run"] = _spread(
            [round(a[key] / b[key], 3) for a, b in pairs if a.get(key) is not None and b.get(key)]
        )
    return ratio


def _pairs(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Two servers' complete runs of the same run number: run one after the other, they
    met the same load from whatever else the machine was doing."""
    done = {r.get("run"): r for r in theirs if r.get("complete", r["ok"] == r["n"])}
    return [(r, done[r.get("run")]) for r in ours
            if r.get("complete", r["ok"] == r["n"]) and r.get("run") in done]


def _cell(figure: dict[str, Any], spec: str) -> str:
    if figure["median"] is None:
        return "-"
    med, low, high = (spec.format(figure[k]) for k in ("median", "min", "max"))
    return f"{med} ({low}-{high})"


def _ratio(ratio: dict[str, Any], key: str) -> str:
    by_run = ratio.get(f"{key}_by_run") or {"median": None}
    text = _fmt(ratio[key], "{:.2f}")
    if by_run["median"] is None:
        return text
    return f"{text} ({by_run['min']:.2f}-{by_run['max']:.2f})"


def _failed(summary: dict[str, Any]) -> str:
    if not summary["failed_runs"]:
        return "0"
    errors = ", ".join(f"{k} x{v}" for k, v in summary["errors"].items())
    return f"{summary['failed_runs']} ({errors})"


def format_summary(summaries: list[dict[str, Any]], markdown: bool = False) -> str:
    """The comparison table (median, and min-max over runs), then the ratios."""
    rows = [s for s in summaries if s["kind"] == "summary"]
    order = list(dict.fromkeys(s["server"] for s in rows))  # as run: builds, then Pebble
    rows.sort(key=lambda s: (s["c"], s["server"] == "pebble", order.index(s["server"])))
    beside = any(
        s[key]["median"] is not None
        for s in rows
        for key in ("database_cpu_ms_per_issuance", "proxy_cpu_ms_per_issuance")
    )
    figures = [f for f in FIGURES if beside or f[0] not in BESIDE_SERVER]
    header = ["server", "C", "runs", *(label for _, label, _ in figures), "failed runs"]
    table = [
        [s["server"], str(s["c"]), str(s["runs"])]
        + [_cell(s[key], spec) for key, _, spec in figures]
        + [_failed(s)]
        for s in rows
    ]
    ratios = sorted((s for s in summaries if s["kind"] == "ratio"),
                    key=lambda s: (s["c"], s["base"] != "pebble", order.index(s["server"])))
    cpu = "total CPU" if beside else "CPU"
    ratio_lines = [
        f"C={r['c']}{'' if r['of'] == 'acme-ca/pebble' else ' ' + r['of'].replace('/', ' / ')}: "
        f"issuances/s x{_ratio(r, 'issuances_per_s')}, "
        f"{cpu} per issuance x{_ratio(r, 'total_cpu_ms_per_issuance')}, "
        f"p99 x{_ratio(r, 'p99_total_ms')}"
        for r in ratios
    ]
    if ratio_lines:
        ratio_lines.append("(acme-ca / pebble, or one acme-ca build / the first: the ratio "
                           "of the medians, and the range of the ratios run by run)")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in table]
        return "\n".join([*lines, "", *(f"- {line}" for line in ratio_lines)])
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *table]
    ]
    return "\n".join([*lines, "", *ratio_lines])
