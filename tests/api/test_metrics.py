"""``/metrics`` (issue 13 item 2) and the Grafana dashboard over it (docs/): every
metric the dashboard queries, and every label it groups by, is one /metrics exposes;
the labels stay bounded (a route's template, never a raw path); the store's latency
is measured by operation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from acme_ca import metrics
from acme_ca.api.metrics import metrics_view
from acme_ca.authority.ca_certificates import CaCertificates
from acme_ca.pki.hierarchy import fingerprint
from acme_ca.pki.issuer import Issuer
from acme_ca.store import open_store
from tests.conftest import Hierarchy, load_issuer

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
PROMQL_WORDS = {"sum", "by", "rate", "min", "max", "histogram_quantile", "time", "le"}


async def scrape(aiohttp_client: Any, issuer: Issuer) -> str:
    app = web.Application()
    app.router.add_get("/metrics", metrics_view(CaCertificates(lambda: issuer)))
    client = await aiohttp_client(app)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return await response.text()


def exposed(text: str) -> dict[str, set[str]]:
    """Sample name -> its label names, from the families /metrics declares (a family
    with no sample yet still says its name and type) and the samples it shows."""
    found: dict[str, set[str]] = {}
    suffixes = {"counter": ("_total",), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum")}
    for name, kind in re.findall(r"^# TYPE (acme_ca_\w+) (\w+)$", text, re.MULTILINE):
        for suffix in suffixes[kind]:
            found.setdefault(name + suffix, set())
    for name, labels in re.findall(r"^(acme_ca_\w+)\{([^}]*)\}", text, re.MULTILINE):
        found.setdefault(name, set()).update(re.findall(r'(\w+)="', labels))
    return found


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(found) >= 10
    return found


async def test_every_metric_the_dashboard_queries_is_exposed(
        aiohttp_client: Any, issuer: Issuer) -> None:
    """Issue 13 item 2: "docs/ gains a Grafana dashboard (JSON) for them"."""
    # the labelled families show their label names once they have a sample
    metrics.ISSUANCES.labels("server", "ecdsa-p256")
    metrics.VALIDATIONS.labels("http-01", "valid")
    metrics.VALIDATIONS_IN_FLIGHT.labels("http-01")
    metrics.PROBLEMS.labels("badNonce")
    metrics.REQUEST_SECONDS.labels("/directory")
    metrics.RATE_LIMIT_HITS.labels("new_orders_per_account")
    metrics.STORE_SECONDS.labels("get_order")
    samples = exposed(await scrape(aiohttp_client, issuer))
    every_label = set().union(*samples.values()) | {"le"}
    for expr in queries():
        names = set(re.findall(r"\bacme_ca_\w+", expr))
        assert names, expr
        assert names <= set(samples), (expr, names - set(samples))
        for grouped in re.findall(r"by \(([^)]*)\)", expr):
            labels = {label.strip() for label in grouped.split(",")}
            assert labels <= every_label, (expr, labels - every_label)


async def test_the_ca_certificates_expiry_is_read_at_each_scrape(
        aiohttp_client: Any, issuer: Issuer) -> None:
    """Issue 13 item 2: "CA certificate expiry times", per certificate."""
    text = await scrape(aiohttp_client, issuer)
    for role, certificate in (("intermediate", issuer.certificate), ("root", issuer.root)):
        prefix = (f'acme_ca_ca_certificate_expiry_timestamp_seconds{{fingerprint="'
                  f'{fingerprint(certificate)}",role="{role}"}} ')
        assert value(text, prefix) == certificate.not_valid_after_utc.timestamp()


async def test_a_replaced_intermediate_leaves_no_stale_series(
        aiohttp_client: Any, issuer: Issuer, make_hierarchy: Callable[..., Hierarchy]) -> None:
    """Review of issue 13 item 2, F3: after a rotation (SIGHUP swaps the issuer) the
    intermediate series is the new one alone: the expiry is read at each scrape, never
    a gauge that only ever grows series."""
    current = [issuer]
    app = web.Application()
    app.router.add_get("/metrics", metrics_view(CaCertificates(lambda: current[0])))
    client = await aiohttp_client(app)
    first = await (await client.get("/metrics")).text()
    assert fingerprint(issuer.certificate) in first
    current[0] = load_issuer(make_hierarchy("rotated"))
    second = await (await client.get("/metrics")).text()
    roles = re.findall(r'^acme_ca_ca_certificate_expiry_timestamp_seconds\{fingerprint="'
                       r'(\w+)",role="intermediate"\}', second, re.MULTILINE)
    assert roles == [fingerprint(current[0].certificate)]
    assert fingerprint(issuer.certificate) not in second


def value(text: str, prefix: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


async def test_the_store_latency_is_measured_by_operation(tmp_path: Path) -> None:
    """Every coroutine method of the store, under its name; the rest passes through."""
    store = metrics.Timed(await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    before = count("latest_expiry")
    try:
        for _ in range(2):
            assert await store.latest_expiry("none", after=datetime.now(UTC)) is None
    finally:
        await store.close()
    assert count("latest_expiry") == before + 2


def count(operation: str) -> float:
    """How many ``operation`` calls STORE_SECONDS has observed."""
    return sum(sample.value for family in metrics.STORE_SECONDS.collect()
               for sample in family.samples
               if sample.name.endswith("_count") and sample.labels["operation"] == operation)
