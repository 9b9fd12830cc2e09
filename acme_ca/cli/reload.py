"""SIGHUP's configuration half: re-read the file ``serve`` started with, apply what can change.

``reload_config`` loads the same file with the same command-line overrides. A file
that does not load (a syntax error, a bad value) changes nothing: one error line, the
server goes on with what it had. Otherwise the settings that only a restart can change
(``RESTART_ONLY``: what is bound, opened or sized at start) keep their running value,
one warning line naming each that differs in the file, and everything else takes
effect for the requests that start from now on (``authority/settings.py`` swaps it
whole): [policy], [profiles.*], [limits], [acme], [retention], [validation] (timeout,
CAA identities, ports, resolvers, hosts, allowed networks), [revocation] crl_lifetime
and renewal_info_retry_after, [server] shutdown_timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from acme_ca.authority.settings import Settings
from acme_ca.config import Config
from acme_ca.errors import AcmeCaError

log = logging.getLogger("acme_ca.serve")

# (table, key): bound, opened or sized at start. A key None: the whole table.
RESTART_ONLY: tuple[tuple[str, str | None], ...] = (
    ("server", "listen"),
    ("server", "hostname"),  # the server's TLS certificate and every URL
    ("server", "external_url"),
    ("server", "data_dir"),
    ("server", "workers"),
    ("server", "log_format"),  # the handlers (and standard output) set up at start
    ("storage", None),
    ("ca", None),  # the files; SIGHUP re-reads the intermediate they name
    ("admin", "listen"),
    ("revocation", "http_listen"),
    ("revocation", "base_url"),  # in every leaf and CRL, fixed per intermediate load
    ("revocation", "ocsp"),
    ("revocation", "ocsp_lifetime"),  # the responder and its certificates
    ("validation", "max_in_flight"),
    ("validation", "max_in_flight_per_account"),
)


def pinned(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """``loaded`` with every ``RESTART_ONLY`` setting at its ``running`` value, and the
    names of those that differed (``"[server] listen"``)."""
    changed: list[str] = []
    tables: dict[str, Any] = {}
    for table, key in RESTART_ONLY:
        old, new = getattr(running, table), tables.get(table, getattr(loaded, table))
        if key is None:
            if old != new:
                changed.append(f"[{table}]")
            tables[table] = old
        elif getattr(old, key) != getattr(new, key):
            changed.append(f"[{table}] {key}")
            tables[table] = replace(new, **{key: getattr(old, key)})
        else:
            tables[table] = new
    return replace(loaded, **tables), changed


def reload_config(settings: Settings, load: Callable[[], Config]) -> bool:
    """Load the configuration again and swap in what can change now (module
    docstring); whether the settings in force changed. Never raises for a bad file."""
    try:
        loaded = load()
    except AcmeCaError as exc:
        log.error("reload: the configuration does not load, keeping the running one: %s", exc)
        return False
    new, restart = pinned(settings.current, loaded)
    for name in restart:
        log.warning("reload: %s changed in the file; it takes effect at the next restart "
                    "(the running value is kept)", name)
    changed = [f"[{f.name}]" for f in fields(Config)
               if getattr(new, f.name) != getattr(settings.current, f.name)]
    if not changed:
        log.info("reload: the configuration is unchanged")
        return False
    try:
        settings.swap(new)
    except AcmeCaError as exc:  # a setting its service refuses: nothing was swapped
        log.error("reload: the configuration cannot be applied, keeping the running one: "
                  "%s", exc)
        return False
    log.info("reload: configuration applied; changed: %s", ", ".join(changed))
    return True
