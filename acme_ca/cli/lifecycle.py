"""How `serve` stops and what its SIGHUP reads (issue 13 item 7), apart from serving.

- ``stop_gracefully``: SIGTERM or SIGINT. Every listener stops accepting connections
  first (a load balancer's next connection goes to another replica at once); the
  connections already open are still answered while the validations and issuances in
  flight finish, at most ``[server] shutdown_timeout`` (``wiring.finish_in_flight``:
  what still runs then is left processing for the next start). ``serve``'s cleanup
  then closes the connections (requests still running get ``HANDLERS_GRACE``), gives
  up the background lease and closes the store.
- ``reloader``: how SIGHUP loads the configuration again (``cli/reload.py`` applies it).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from aiohttp import web

from acme_ca.authority.settings import Settings
from acme_ca.cli.wiring import finish_in_flight
from acme_ca.config import Config, config_path_from_env, load_config

log = logging.getLogger("acme_ca.serve")

HANDLERS_GRACE = 2.0  # seconds requests still running get once the work in flight is done


async def stop_gracefully(runners: list[web.AppRunner], acme: web.Application,
                          settings: Settings) -> None:
    """No new connection on any of ``runners``, then the work in flight in ``acme``
    finished within the shutdown timeout in force (module docstring)."""
    timeout = settings.current.server.shutdown_timeout.total_seconds()
    for runner in runners:
        for site in list(runner.sites):
            await site.stop()
    log.info("stopping: no new connections; finishing the work in flight (at most %gs)",
             timeout)
    await finish_in_flight(acme, timeout)
    log.info("stopped")


def reloader(args: argparse.Namespace) -> Callable[[], Config]:
    """The configuration as `acme-ca` loaded it at start: the same file (--config or
    $ACME_CA_CONFIG), the same command-line overrides (``cli/main.py``)."""
    overrides = {"server.data_dir": getattr(args, "data_dir", None),
                 **getattr(args, "overrides", lambda _: {})(args)}
    return lambda: load_config(config_path_from_env(getattr(args, "config", None)), overrides)
