"""`serve --workers N`: N server processes sharing one listening port (SO_REUSEPORT).

The parent forks the workers before any event loop or thread exists, forwards SIGINT,
SIGTERM and SIGHUP to them, and waits. When one worker fails, the others are stopped
and the parent exits with that worker's status, so a service manager restarts the
whole. The workers share the CA files and the database: every state change is a
compare-and-set in the store, so they need nothing else in common but, with the admin
listener, their metrics' directory (``shared_metrics``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from acme_ca.errors import AcmeCaError
from acme_ca.metrics import run_directory, shared_directory

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_workers(count: int, work: Callable[[int], None]) -> int:
    """Run `work(index)` in `count` child processes; 0 if all of them ended well."""
    children: dict[int, int] = {}
    for index in range(count):
        pid = os.fork()
        if pid == 0:  # the worker
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            # SIGHUP stays as it was before the fork (ignored by `serve` until its
            # loop handles it): a reload while a worker starts must not end it
            os._exit(_worker(work, index))
        children[pid] = index

    def forward(sig: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    status = 0
    while children:
        pid, raw = os.wait()
        children.pop(pid, None)
        code = os.waitstatus_to_exitcode(raw)
        if code != 0 and status == 0:
            status = code if code > 0 else 1
            forward(signal.SIGTERM, None)
    return status


def _worker(work: Callable[[int], None], index: int) -> int:
    try:
        work(index)
    except AcmeCaError as error:
        print(f"acme-ca: error: worker {index}: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        return 0
    except BaseException as bug:  # a worker reports everything; nothing passes the fork
        print(f"acme-ca: internal error in worker {index}: {type(bug).__name__}: {bug}",
              file=sys.stderr)
        return 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def shared_metrics(parent: Path) -> AbstractContextManager[Path]:
    """The workers' metrics, summed by whichever answers /metrics, in a directory of
    this run's own under ``parent`` (``metrics.run_directory``); a one-line error when
    it cannot be made."""
    try:
        return shared_directory(*run_directory(parent))
    except OSError as exc:
        named = f" ({exc.filename})" if exc.filename else ""
        raise AcmeCaError(f"the metrics directory {parent}: {exc.strerror or exc}{named}"
                          ) from None
