"""Every Prometheus metric the CA exposes (``/metrics`` on the admin listener), in one
place, through prometheus-client.

Names start with ``acme_ca_``; every label has a bounded set of values (a profile, a
key type, a challenge type, a route's name, a store method's name: never a raw path,
an account or a domain). Every metric has at least one label: a labelled metric makes
its values only when first used, which is what lets ``shared_directory`` switch to
prometheus-client's multiprocess mode after this module was imported.

With ``serve --workers N`` the workers share one directory (``use_run_directory``,
called by the parent before it forks: ``<data_dir>/metrics/<pid>-<random>``, this run's
own, so a second ``serve`` on the same data directory never touches the first one's
live files): each process writes its values to files there, and
whichever worker answers ``/metrics`` sums them (``exposition``). Counters and
histograms add up; the validations in flight add up over the live processes. The CA
certificates' expiry is no stored value: ``CaExpiries`` reads the answering process's
current CA certificates at each scrape, so an intermediate replaced (SIGHUP after
``acme-ca intermediate renew``) is shown as archived at once, never as a stale
"intermediate" series.

The store's latency is measured by ``Timed``, a proxy around the store: a call costs
one ``perf_counter`` pair and one observation (about a microsecond; see
docs/operations.md for the overhead measured per issuance).
"""

from __future__ import annotations

import contextlib
import fcntl
import inspect
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
disable_created_metrics()  # no *_created series: a counter's start is the process's

ISSUANCES = Counter(
    "acme_ca_issuances", "Certificates signed, by profile and key type",
    ["profile", "key_type"])
VALIDATIONS = Counter(
    "acme_ca_validations", "Challenge validations finished, by challenge type and outcome "
    "(valid, or the ACME error type of the failure: connection, unauthorized, caa ...)",
    ["challenge_type", "outcome"])
VALIDATIONS_IN_FLIGHT = Gauge(
    "acme_ca_validations_in_flight", "Challenge validations running now, by challenge type",
    ["challenge_type"], multiprocess_mode="livesum")
PROBLEMS = Counter(
    "acme_ca_problems", "Problem documents answered (RFC 7807), by ACME error type",
    ["type"])
REQUEST_SECONDS = Histogram(
    "acme_ca_request_duration_seconds", "Time to answer an ACME request, by endpoint "
    "(the route's name)", ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
RATE_LIMIT_HITS = Counter(
    "acme_ca_rate_limit_hits", "Requests refused by a rate limit, by limit ([limits] key)",
    ["limit"])
STORE_SECONDS = Histogram(
    "acme_ca_store_operation_duration_seconds", "Time of a store operation, by operation "
    "(the store method)", ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))


RUN_NAME = re.compile(r"[0-9]+-\w+")  # <pid>-<random>: what run_directory names


def single_process() -> None:
    """This process's metrics alone, in memory: a ``PROMETHEUS_MULTIPROC_DIR`` inherited
    from the environment is forgotten (its series are another program's, and ours are
    not to be written there). Call it before any metric is used."""
    os.environ.pop(MULTIPROCESS_ENV, None)
    values.ValueClass = values.get_value_class()


def run_directory(parent: Path) -> tuple[Path, int]:
    """A directory of this run's own under ``parent`` (created if missing), and the
    descriptor that holds its lock: ``<pid>-<random>``, created exclusively (mode 0700)
    and locked (flock) for as long as this process or a worker it forks lives. The
    directories under ``parent`` of runs that ended (their lock free) are removed
    first; a live run's are never touched. OSError when ``parent`` is not a directory
    or cannot be written."""
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_ended_runs(parent)
    # made under a name no other run removes, locked, then named: never seen unlocked
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=parent))
    lock = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    run = parent / f"{os.getpid()}-{staging.name.removeprefix('.new-')}"
    staging.rename(run)
    return run, lock


def _remove_ended_runs(parent: Path) -> None:
    for entry in os.scandir(parent):
        if not RUN_NAME.fullmatch(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue  # not a run's directory: left alone
        try:
            held = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run's
        else:
            shutil.rmtree(entry.path)
        finally:
            os.close(held)


@contextlib.contextmanager
def shared_directory(run: Path, lock: int) -> Iterator[Path]:
    """Multiprocess mode in ``run`` (``run_directory``, whose lock ``lock`` holds) while
    the block runs (enter it before any metric is used and before forking the workers;
    it ends once they all have); the directory is removed then."""
    os.environ[MULTIPROCESS_ENV] = str(run)
    values.ValueClass = values.get_value_class()
    try:
        yield run
    finally:
        shutil.rmtree(run, ignore_errors=True)
        os.close(lock)


class CaExpiries:
    """A collector of ``acme_ca_ca_certificate_expiry_timestamp_seconds``: when each CA
    certificate expires (Unix time), by role (root, intermediate, archived
    intermediate) and SHA-256 fingerprint, as ``expiries`` gives them at each scrape
    (``CaCertificates.expiries``)."""

    def __init__(self, expiries: Callable[[], Iterable[tuple[str, str, datetime]]]) -> None:
        self._expiries = expiries

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "acme_ca_ca_certificate_expiry_timestamp_seconds", "When a CA certificate "
            "expires (Unix time), by role (root, intermediate, archived intermediate) and "
            "SHA-256 fingerprint", labels=["role", "fingerprint"])
        for role, fingerprint, not_after in self._expiries():
            family.add_metric([role, fingerprint], not_after.timestamp())
        yield family


def exposition(ca: CaExpiries) -> tuple[bytes, str]:
    """The metrics in Prometheus's text format, and its content type: this process's,
    or in multiprocess mode every process's summed; then the CA certificates' expiry."""
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory is None:
        measured = generate_latest(REGISTRY)
    else:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        measured = generate_latest(registry)
    read_now = CollectorRegistry()
    read_now.register(ca)
    return measured + generate_latest(read_now), CONTENT_TYPE_LATEST


_REQUEST_SERIES: dict[str, Any] = {}  # endpoint -> its histogram (labels() locks, checks)


def observe_request(endpoint: str, started: float) -> None:
    """An ACME request to ``endpoint`` answered, ``started`` at that ``perf_counter``."""
    series = _REQUEST_SERIES.get(endpoint)
    if series is None:
        series = _REQUEST_SERIES[endpoint] = REQUEST_SECONDS.labels(endpoint)
    series.observe(time.perf_counter() - started)


class Timed:
    """``target`` with each coroutine method's duration observed in ``STORE_SECONDS``
    under the method's name; everything else passes through untouched."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute
        timed = _timed(attribute, STORE_SECONDS.labels(name).observe)
        self.__dict__[name] = timed  # found directly from now on
        return timed


def _timed(method: Callable[..., Any], observe: Callable[[float], None]) -> Callable[..., Any]:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            observe(time.perf_counter() - started)

    return timed
