"""The cluster's background work: done by one process at a time, under a lease.

Every process (each ``serve --workers`` worker, each replica) runs one
``BackgroundWork``. Every ``PERIOD`` seconds it tries to hold the store's lease
``"background"`` for ``TTL`` seconds (``LeaseStore.hold_lease``: taken if free or
expired, renewed if already its own). The process that holds it runs the jobs, one
after the other, each every period unless its ``Job.every`` is longer (then at most
once per ``every`` seconds; a run cut short or failed is tried again next period, and
a process that takes the lease runs every job at once); today (``cli/wiring.py``):

- the issuance sweeper (``sweeper.py``): orders left processing by an issuance that
  stopped;
- resuming validations whose process stopped (``ValidationSupervisor.resume_stopped``):
  challenges processing for longer than a validation lasts, handed to this process's
  supervisor unless it already runs them;
- purging expired nonces (``NonceService.purge_expired``), a bounded batch per
  statement, the loop free between two;
- expiring orders and authorizations past their time (``Expiry.expire``,
  ``expiry.py``), a bounded batch per transaction, every ``EXPIRY_EVERY``; between two
  rounds a read judges them expired all the same (``domain/states.py``).
- pruning orders and authorizations expired longer ago than ``[retention] grace``,
  and full rate-limit buckets (``Retention.prune``, ``retention.py``), a bounded batch
  per transaction, every ``RETENTION_EVERY``.
- publishing CRLs (``CrlPublisher.publish``, ``crls.py``).

Takeover: a holder that dies (kill -9) stops renewing; its lease expires at most
``TTL`` after its last renewal, and another process takes it at its next try, so the
work moves within ``TTL + PERIOD`` seconds. A holder that stops cleanly releases the
lease (``close``) and the next try elsewhere takes it at once. The moves are logged:
taken, lost, released.

A lease keeps the work from being done N times over; it cannot prove that a former
holder stopped (a process paused past its lease wakes up still running a job). So
every job is safe when two processes run it at once (each move is a compare-and-set),
and does its work a batch at a time. A round of jobs ends before the lease could
expire (``TTL`` minus two periods after the try that held it): a job cut short goes on
next period. A job that fails is logged and tried again next period; the store
unreachable (``StoreUnavailable``) or any other failure to hold the lease is logged
once, and its end once; nothing but ``close`` stops the loop.

Per host, not here: destroying the archived intermediate keys (``archived_keys.py``)
and renewing the server's own TLS certificate (``server_tls.py``) act on this host's
files (the data directory), which other hosts do not share, so each host runs them in
one of its processes (``serve``'s worker 0); a cluster-wide lease would leave every
other host's files alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from acme_ca.errors import StoreError, StoreUnavailable
from acme_ca.store.cluster import LeaseStore

log = logging.getLogger(__name__)

LEASE = "background"
PERIOD = 2.0  # seconds between two tries to hold (or renew) the lease
TTL = 10.0  # seconds a lease lasts unless renewed: a dead holder's work moves within TTL + PERIOD


@dataclass(frozen=True, slots=True)
class Job:
    """One piece of the cluster's work: safe to run in two processes at once, done a
    batch at a time (what is left is done next period)."""

    name: str
    run: Callable[[], Awaitable[object]]
    every: float = 0.0  # seconds from a completed run's start to the next at least; 0: each period


def holder_id() -> str:
    """This process, as a lease names its holder: host, pid, and a random part (a pid is
    reused after a restart, and every container's first process is pid 1)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class BackgroundWork:
    """This process's try at the lease, and the jobs it runs while it holds it."""

    def __init__(
        self,
        store: LeaseStore,
        jobs: Sequence[Job],
        *,
        holder: str | None = None,
        period: float = PERIOD,
        ttl: float = TTL,
    ) -> None:
        if not 0 < 2 * period < ttl:
            raise ValueError("the lease must last longer than two periods")
        self._store = store
        self._jobs = tuple(jobs)
        self.holder = holder or holder_id()
        self._period = period
        self._ttl = ttl
        self._held = False
        self._due = [0.0] * len(self._jobs)  # loop time at which each job is due again
        self._trouble: str | None = None  # the last failure to hold the lease, said once
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        """Whether this process held the lease at its last try."""
        return self._held

    async def start(self) -> None:
        """One ``step`` now (what a stopped process left is taken up before the first
        request), then one every period in a task owned here, until ``close``."""
        await self.step()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._every_period())

    async def step(self) -> bool:
        """Hold or renew the lease; while held, run once every job that is due
        (``Job.every``), within the lease's time. Whether this process holds the lease;
        never raises but when cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ttl - 2 * self._period
        if await self._hold():
            await self._run_jobs(deadline)
        return self._held

    async def close(self) -> None:
        """Stop the loop; give the lease up, so that another process takes over at its
        next try rather than after ``TTL``. Closing twice is harmless.

        The lease is given up even when this process does not know it holds it: a close
        that cancels a try whose take was committed but not yet answered would otherwise
        leave it with a process that is gone. The release names the holder, so it
        changes nothing when another process has the lease."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        held, self._held = self._held, False
        try:
            await self._store.release_lease(LEASE, self.holder)
        except Exception as exc:  # it expires by itself
            if held:
                log.warning("could not release the background lease (%s): another process "
                            "takes the background work over within %gs", exc, self._ttl)
        else:
            if held:
                log.info("released the background lease: another process takes the "
                         "background work over")

    async def _every_period(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            await self.step()

    async def _hold(self) -> bool:
        try:
            expires = await self._store.hold_lease(LEASE, self.holder,
                                                   timedelta(seconds=self._ttl))
        except Exception as exc:
            self._failed(exc)
            held = False
        else:
            if self._trouble is not None:
                log.info("the background lease can be held again")
                self._trouble = None
            held = expires is not None
        if held and not self._held:
            self._due = [0.0] * len(self._jobs)  # what another holder left: at once
            log.info("took the background lease as %s: this process runs the cluster's "
                     "background work (%s)", self.holder, ", ".join(j.name for j in self._jobs))
        elif self._held and not held:
            log.warning("lost the background lease: %s", "this process could not renew it"
                        if self._trouble else "another process holds it now")
        self._held = held
        return held

    def _failed(self, exc: Exception) -> None:
        """Log a failure to hold the lease once, not every period."""
        trouble = f"{type(exc).__name__}: {exc}"
        if trouble == self._trouble:
            return
        self._trouble = trouble
        if isinstance(exc, StoreUnavailable):
            log.warning("cannot hold the background lease, the database cannot be reached "
                        "(%s); trying again every %gs", exc, self._period)
        elif isinstance(exc, StoreError):
            log.error("cannot hold the background lease (%s); trying again every %gs",
                      exc, self._period)
        else:
            log.exception("cannot hold the background lease; trying again every %gs",
                          self._period)

    async def _run_jobs(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        for index, job in enumerate(self._jobs):
            started = loop.time()
            if started < self._due[index]:
                continue
            limit = asyncio.timeout_at(deadline)
            try:
                async with limit:
                    await job.run()
                self._due[index] = started + job.every
            except TimeoutError:
                if not limit.expired():
                    log.exception("background job %s failed; next try in %gs",
                                  job.name, self._period)
                    continue
                log.warning("background job %s was cut short at the end of the lease's "
                            "time; it goes on next period", job.name)
                return
            except StoreUnavailable as exc:
                log.warning("background job %s: the database cannot be reached (%s); next "
                            "try in %gs", job.name, exc, self._period)
            except Exception:
                log.exception("background job %s failed; next try in %gs",
                              job.name, self._period)


async def in_batches(job: Callable[..., Awaitable[int]], now: datetime, batch: int) -> int:
    """``job(now, limit=batch)`` until a call does fewer than ``batch`` rows, yielding to
    the loop's other tasks between two calls; how many rows it did in all. The jobs that
    work through a backlog (expired nonces, orders, authorizations) are bounded so."""
    total = 0
    while True:
        done = await job(now, limit=batch)
        total += done
        if done < batch:
            return total
        await asyncio.sleep(0)
