"""Storage: the ``Store`` Protocol, its backends, and ``open_store`` to pick one by URL.

Only ``cli`` builds a store (with ``open_store``); everything else receives one
and depends on ``Store`` alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from acme_ca.clock import Clock
from acme_ca.errors import ConfigError
from acme_ca.store.base import Store
from acme_ca.store.reads import ReadStore
from acme_ca.store.sqlite import MEMORY, SqliteStore
from acme_ca.store.writes import WriteStore

__all__ = ["ReadStore", "SqliteStore", "Store", "WriteStore", "open_store"]

_SQLITE_PREFIX = "sqlite:///"
_ALLOWED = (
    "storage.url must be sqlite:///<relative path>, sqlite:////<absolute path> "
    "or sqlite:///:memory:"
)


async def open_store(url: str, *, clock: Clock | None = None) -> Store:
    """Open the store that ``storage.url`` names, migrated to the current schema.

    ``sqlite:///<path>`` opens a SQLite file (a relative path is relative to the
    working directory; ``sqlite:////var/lib/acme-ca/ca.db`` is absolute), creating
    missing parent directories with mode 0700. ``sqlite:///:memory:`` is a private
    in-memory database, for tests. Anything else raises ``ConfigError``; the URL
    itself is not repeated in the message, since a database URL may hold a password.
    """
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme in ("postgresql", "postgres"):
        raise ConfigError(
            "storage.url: PostgreSQL storage is not available yet; use sqlite:///<path>"
        )
    path = url.removeprefix(_SQLITE_PREFIX)
    if not url.startswith(_SQLITE_PREFIX) or not path:
        if scheme == "sqlite":
            given = "the sqlite URL has no path after sqlite:///"
        elif scheme:
            given = f"{scheme!r} URLs are not supported"
        else:
            given = "the value is not a URL"
        raise ConfigError(f"{_ALLOWED}; {given}")
    if path != MEMORY:
        _make_private_dirs(Path(path).parent)
    return await SqliteStore.open(path, clock=clock)


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing ancestors with mode 0700 (umask aside)."""
    missing: list[Path] = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # created meanwhile by another process: leave its mode alone
        except OSError as exc:
            raise ConfigError(f"storage.url: cannot create {folder}: {exc.strerror}") from exc
        os.chmod(folder, 0o700)
