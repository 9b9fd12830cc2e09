"""Waiting in tests for what happened, never for a length of time.

A test that sleeps to let something happen passes when the machine is quick and fails
(or, worse, passes for the wrong reason) when it is busy. Tests wait instead on an
event, a future, or a condition polled against a deadline that fails the test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")
DEADLINE = 10.0  # seconds: far beyond any wait that succeeds, even on a busy machine
POLL = 0.001


async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Return as soon as `condition()` holds; fail the test if it does not within
    `deadline` seconds. `what` says what was awaited, for the failure message."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"waited {deadline:g} s in vain until {what}")
        await asyncio.sleep(POLL)


async def within(awaitable: Awaitable[T], what: str, deadline: float = DEADLINE) -> T:
    """`awaitable`'s result; fail the test if it takes over `deadline` seconds."""
    try:
        return await asyncio.wait_for(awaitable, deadline)
    except TimeoutError:
        pytest.fail(f"waited {deadline:g} s in vain for {what}")


def exit_codes(pids: list[int], what: str, deadline: float = DEADLINE) -> list[int]:
    """The exit codes of the forked children ``pids``, in their order, as soon as all
    have exited; fail the test if they have not within `deadline` seconds (the children
    left are then killed and reaped, so none outlives the test)."""
    codes: dict[int, int] = {}
    end = time.monotonic() + deadline
    while len(codes) < len(pids):
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        if len(codes) == len(pids):
            break
        if time.monotonic() > end:
            for pid in set(pids) - set(codes):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            pytest.fail(f"waited {deadline:g} s in vain until {what}")
        time.sleep(POLL)
    return [codes[pid] for pid in pids]
