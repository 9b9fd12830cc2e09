"""Versioned schema migrations: numbered SQL files, each applied once, in order.

The files live in ``acme_ca/store/schema/<dialect>/NNNN_<name>.sql`` (``sqlite``
and ``postgres``) and are read with ``importlib.resources``, so
they work from an installed wheel as well as from a checkout. Version N is the
file numbered N; the numbers run 1, 2, 3 ... without gaps. A migration is never
edited once released: a change to the schema is a new file.

Each migration runs in one transaction together with the row that records it in
``schema_migrations``, so a crash leaves the database at the previous version,
never in between. Each backend has its runner (``sqlite/migrate.py``,
``postgres/migrate.py``): it takes a lock and only then re-reads the version, so two
processes opening the same fresh
database at once apply each migration exactly once. A database whose version is
newer than the files this code ships with is refused; what only reads, and never
migrates (``acme-ca db stats``), refuses any other version than the newest
(``check_current``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from acme_ca.errors import StoreError

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def load_migrations(dialect: str) -> tuple[Migration, ...]:
    """The migrations shipped for ``dialect`` ("sqlite" or "postgres"), ordered by version."""
    folder = resources.files("acme_ca.store") / "schema" / dialect
    if not folder.is_dir():
        raise StoreError(f"no schema migrations are shipped for {dialect!r}")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        sql = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match.group(1)), match.group(2), sql))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"schema/{dialect}: migrations must be numbered 1..N, found {versions}")
    return tuple(found)


def check_known(found: int, known: int) -> None:
    """Refuse a database migrated by a newer acme-ca than this one."""
    if found > known:
        raise StoreError(
            f"the database schema is at version {found}, but this acme-ca knows only "
            f"versions up to {known}; run a newer acme-ca or restore a matching backup"
        )


def check_current(found: int, dialect: str, where: str) -> None:
    """Refuse, for a reader that never migrates, a database ``where`` whose schema is
    not the newest this code ships for ``dialect``: an older one may still be served
    by an older acme-ca, and 0 is no acme-ca database at all."""
    latest = len(load_migrations(dialect))
    if found == 0:
        raise StoreError(f"{where} holds no acme-ca database (no schema version): "
                         "is [storage] url right?")
    if found != latest:
        raise StoreError(
            f"the database schema is at version {found}, not {latest} as this acme-ca's; "
            "it is only read here, never migrated: use the acme-ca that serves it")
