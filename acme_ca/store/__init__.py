"""Storage: the ``Store`` Protocol, its backends, and ``open_store`` to pick one by URL.

Only ``cli`` builds a store (with ``open_store``); everything else receives one
and depends on ``Store`` alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from acme_ca.clock import Clock
from acme_ca.config import DEFAULT_POOL_SIZE
from acme_ca.errors import ConfigError
from acme_ca.store.base import Store
from acme_ca.store.reads import ReadStore
from acme_ca.store.retention import TableStats
from acme_ca.store.sqlite import MEMORY, SqliteStore
from acme_ca.store.sqlite.retention import read_only_table_stats
from acme_ca.store.writes import WriteStore

__all__ = ["ReadStore", "SqliteStore", "Store", "WriteStore", "is_postgres", "open_store",
           "read_table_stats", "sqlite_file"]

_SQLITE_PREFIX = "sqlite:///"
_ALLOWED = (
    "storage.url must be sqlite:///<relative path>, sqlite:////<absolute path>, "
    "sqlite:///:memory: or postgresql://[user@]host[:port]/database"
)


async def open_store(
    url: str, *, clock: Clock | None = None, pool_size: int = DEFAULT_POOL_SIZE
) -> Store:
    """Open the store that ``storage.url`` names, migrated to the current schema.

    ``sqlite:///<path>`` opens a SQLite file (a relative path is relative to the
    working directory; ``sqlite:////var/lib/acme-ca/ca.db`` is absolute), creating
    missing parent directories with mode 0700. ``sqlite:///:memory:`` is a private
    in-memory database, for tests. ``postgresql://`` (or ``postgres://``) opens a
    PostgreSQL database with a pool of at most ``pool_size`` connections
    (``[storage] pool_size``; SQLite has no pool), TLS as the URL's ``sslmode`` and
    ``sslrootcert`` say. Anything else raises ``ConfigError``; the URL itself is not
    repeated in any message, since a database URL may hold a password.
    """
    scheme = _scheme(url)
    if is_postgres(url):
        return await _open_postgres(url, clock, pool_size)
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


async def read_table_stats(url: str) -> list[TableStats]:
    """``Store.table_stats`` of the database ``storage.url`` names, read without
    creating, migrating or writing anything (``acme-ca db stats``): a SQLite file
    opened read-only, a PostgreSQL database not migrated. ``StoreError`` for a database
    whose schema is not this code's newest (``migrations.check_current``), and for a
    SQLite file that does not exist or is no database."""
    if not is_postgres(url):
        path = sqlite_file(url)
        if path is None:
            raise ConfigError(f"{_ALLOWED}; an in-memory database has no tables to read")
        return read_only_table_stats(path)
    store = await _open_postgres(url, None, 1, migrate=False)
    try:
        return await store.table_stats()
    finally:
        await store.close()


def _scheme(url: str) -> str:
    return url.partition(":")[0].lower() if ":" in url else ""


def is_postgres(url: str) -> bool:
    """A ``postgresql://`` (or ``postgres://``) URL: the PostgreSQL backend's."""
    return _scheme(url) in ("postgresql", "postgres")


def sqlite_file(url: str) -> Path | None:
    """The database file a ``sqlite:///`` URL names (``open_store``); None for
    ``sqlite:///:memory:`` and for any other URL."""
    path = url.removeprefix(_SQLITE_PREFIX)
    if not url.startswith(_SQLITE_PREFIX) or path in ("", MEMORY):
        return None
    return Path(path)


async def _open_postgres(url: str, clock: Clock | None, pool_size: int, *,
                         migrate: bool = True) -> Store:
    """The PostgreSQL backend, imported only now: asyncpg is an optional extra."""
    try:
        from acme_ca.store.postgres import PostgresStore
    except ImportError as exc:
        raise ConfigError(
            f"storage.url: PostgreSQL needs asyncpg ({exc.name} is missing); "
            "install acme-ca[postgres]"
        ) from None
    return await PostgresStore.open(url, clock=clock, pool_size=pool_size, migrate=migrate)


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
