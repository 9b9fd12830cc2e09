"""The event loop `serve` runs on: ``[server] event_loop``.

"auto" (the default) runs uvloop when it is installed (``pip install 'acme-ca[fast]'``)
and asyncio's own loop otherwise; "asyncio" and "uvloop" ask for one, and "uvloop"
without uvloop installed is a one-line error. The startup line names the loop that
runs. Every loop of a `serve` comes from here: the one that prepares the TLS
certificate before the workers fork and each worker's own (uvloop keeps no state
across a fork: each process makes its loop after it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from acme_ca.errors import ConfigError

T = TypeVar("T")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def chosen_loop(setting: str) -> tuple[str, LoopFactory | None]:
    """(the name the startup line says, the factory; None for asyncio's own) for the
    ``[server] event_loop`` setting."""
    if setting == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if setting == "uvloop":
            raise ConfigError("server.event_loop: 'uvloop' is not installed (pip install "
                              "'acme-ca[fast]', or set 'auto' or 'asyncio')") from None
        return "asyncio", None
    return f"uvloop {uvloop.__version__}", uvloop.new_event_loop


def run_on(factory: LoopFactory | None, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a loop of ``factory`` (asyncio's own for None)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
