"""What one audit-log append costs (``AuditStore.append_audit``, issue 13 item 4): every
issuance, revocation and account change appends one entry, under the one lock that
keeps the hash chain from forking, so appends are serialised on the whole database.

For each backend, on a fresh database (SQLite: a file in a temporary folder on the
disk the folder ``--dir`` names, ``synchronous = FULL``; PostgreSQL: a fresh database
on 127.0.0.1:5432, ``bench/postgres.py``), appends per second by:

- one writer: one append at a time, each awaited (a quiet server);
- 8 tasks: 8 appends in flight at once in one store (one busy server process; SQLite
  commits them a batch at a time, PostgreSQL queues them on the advisory lock);
- 8 processes: 8 processes with a store each, one append at a time each (``serve
  --workers 8``, or 8 replicas): SQLite's file lock, PostgreSQL's advisory lock.

Each run ends by reading the whole log back and checking it with ``verify_chain``.

    .venv/bin/python -m bench.audit_appends [--appends 2000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from acme_ca.domain.audit import AuditAction, AuditEntry, AuditEvent, verify_chain
from acme_ca.store import Store, open_store
from bench import postgres

WIDTH = 8  # concurrent tasks, or processes


def _event(n: int) -> AuditEvent:
    """An issuance as the authority records it: account, IP, names, serial, profile."""
    return AuditEvent(AuditAction.CERTIFICATE_ISSUED, f"account:acct-{n % 50}",
                      f"192.0.2.{n % 250}", (f"host{n}.bench.local",), f"{n:032x}",
                      {"profile": "server", "key": "ec256"})


async def _appends(store: Store, first: int, count: int) -> None:
    for n in range(first, first + count):
        await store.append_audit(_event(n), datetime.now(UTC))


async def _one_writer(url: str, count: int) -> float:
    store = await open_store(url)
    try:
        start = time.perf_counter()
        await _appends(store, 0, count)
        return time.perf_counter() - start
    finally:
        await store.close()


async def _tasks(url: str, count: int) -> float:
    store = await open_store(url)
    try:
        share = count // WIDTH
        start = time.perf_counter()
        await asyncio.gather(*(_appends(store, i * share, share) for i in range(WIDTH)))
        return time.perf_counter() - start
    finally:
        await store.close()


def _process(url: str, first: int, count: int, ready: object, go: object,
             times: object) -> None:
    """One of the processes: open a store, wait for the others, append, report times."""

    async def run() -> tuple[float, float]:
        store = await open_store(url)
        try:
            ready.release()  # type: ignore[attr-defined]
            go.wait()  # type: ignore[attr-defined]
            start = time.time()
            await _appends(store, first, count)
            return start, time.time()
        finally:
            await store.close()

    times.put(asyncio.run(run()))  # type: ignore[attr-defined]


async def _processes(url: str, count: int) -> float:
    context = multiprocessing.get_context("spawn")
    ready, go, times = context.Semaphore(0), context.Event(), context.Queue()
    share = count // WIDTH
    workers = [context.Process(target=_process, args=(url, i * share, share, ready, go, times))
               for i in range(WIDTH)]
    for worker in workers:
        worker.start()
    for _ in workers:
        await asyncio.to_thread(ready.acquire)
    go.set()
    spans = [await asyncio.to_thread(times.get) for _ in workers]
    for worker in workers:
        await asyncio.to_thread(worker.join)
    return max(end for _, end in spans) - min(start for start, _ in spans)


async def _verified(url: str) -> int:
    """How many entries the log holds; RuntimeError unless its chain verifies."""
    store = await open_store(url)
    try:
        entries: list[AuditEntry] = []
        while page := await store.audit_entries(after_seq=len(entries), limit=5000):
            entries += page
        last, broken = verify_chain(entries)
        if broken is not None:
            raise RuntimeError(f"the chain broke at {broken.seq}: {broken.reason}")
        return 0 if last is None else last.seq
    finally:
        await store.close()


MODES: dict[str, Callable[[str, int], Awaitable[float]]] = {
    "one writer": _one_writer, f"{WIDTH} tasks": _tasks, f"{WIDTH} processes": _processes}


async def _backend(name: str, count: int, folder: str) -> None:
    for mode, run in MODES.items():
        if name == "sqlite":
            with tempfile.TemporaryDirectory(dir=folder) as directory:
                url = f"sqlite:///{directory}/audit.db"
                seconds = await run(url, count)
                entries = await _verified(url)
        else:
            async with postgres.fresh_database() as database:
                url = postgres.url(database)
                seconds = await run(url, count)
                entries = await _verified(url)
        print(f"{name:10} {mode:12} {entries:6} appends in {seconds:6.2f} s: "
              f"{entries / seconds:7.0f} appends/s, {1000 * seconds / entries:6.2f} ms each "
              f"(chain verified)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_appends",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=2000,
                        help=f"appends per run (a multiple of {WIDTH})")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--dir", default=".", help="where SQLite's temporary folder goes")
    args = parser.parse_args()
    count = args.appends - args.appends % WIDTH
    for name in args.backends.split(","):
        asyncio.run(_backend(name, count, args.dir))


if __name__ == "__main__":
    main()
