"""``python -m bench.metrics_cost [--multiprocess]``: what one measurement of
``acme_ca/metrics.py`` costs, in microseconds of CPU: a store call through ``Timed``
against the bare call, a labelled counter's increment, a request's latency observation.

Multiply by the calls per issuance (``/metrics`` after ``python -m bench run`` against
a server with ``[admin] listen``: about 26 store calls, 5 requests, 1 issuance and 1
validation) for the cost per issuance; docs/operations.md has the figures.
``--multiprocess``: in prometheus-client's multiprocess mode (``serve --workers N``
with the admin listener), whose values are memory-mapped files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from acme_ca import metrics

CALLS = 200_000


class _Store:
    async def get_order(self, order_id: int) -> int:
        return order_id


def per_call(action: Callable[[int], object]) -> float:
    """Microseconds of process CPU per ``action(i)``."""
    start = time.process_time()
    for i in range(CALLS):
        action(i)
    return (time.process_time() - start) / CALLS * 1e6


async def _awaited(store: object) -> float:
    start = time.process_time()
    for i in range(CALLS):
        await store.get_order(i)  # type: ignore[attr-defined]
    return (time.process_time() - start) / CALLS * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_cost")
    parser.add_argument("--multiprocess", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        if args.multiprocess:  # as serve chooses it: after the import
            stack.enter_context(metrics.shared_directory(
                *metrics.run_directory(Path(directory) / "metrics")))
        bare = asyncio.run(_awaited(_Store()))
        timed = asyncio.run(_awaited(metrics.Timed(_Store())))
        counter = per_call(lambda _: metrics.ISSUANCES.labels("server", "ecdsa-p256").inc())
        request = per_call(lambda _: metrics.observe_request("/acme/new-order",
                                                             time.perf_counter()))
    mode = "multiprocess" if args.multiprocess else "one process"
    print(f"{mode}: store call {bare:.2f} us bare, {timed:.2f} us timed "
          f"(+{timed - bare:.2f}); counter inc {counter:.2f} us; "
          f"request observation {request:.2f} us")


if __name__ == "__main__":
    main()
