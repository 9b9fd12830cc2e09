"""The backends every contract test runs on: SQLite and PostgreSQL, one database each.

A test asks for ``store`` (a store with the accounts ACCOUNT and OTHER), ``other`` (a
second store on the same database: another process, or another replica), or for
``backend`` itself to open more stores, or to open one later (a restart). Each store
is opened with ``open_store`` and the URL a deployment would configure.

SQLite gets a file in the test's tmp_path. PostgreSQL (127.0.0.1:5432, user postgres,
trust authentication, or ``ACME_CA_PG_DSN``) gets a fresh database with a random name,
dropped after the test (its connections terminated first): ``tests/store/pg.py``.
Without PostgreSQL or asyncpg the postgresql tests skip, saying why; under CI
(``CI=true``) they fail instead, since the suite must run on both backends there.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from acme_ca.store import Store, open_store
from acme_ca.store.migrations import load_migrations
from tests.store.conftest import with_accounts
from tests.store.pg import fresh_database, require_asyncpg

# The folder of each backend's migrations (acme_ca/store/schema/<dialect>/).
DIALECTS = {"sqlite": "sqlite", "postgresql": "postgres"}


@dataclass
class Backend:
    """Opens stores on one database; closes them all after the test."""

    name: str  # "sqlite" or "postgresql"
    url: str
    opened: list[Store] = field(default_factory=list)

    async def open(self) -> Store:
        """Another store on this database, as another process or replica opens it."""
        store = await open_store(self.url)
        self.opened.append(store)
        return store

    async def execute(self, sql: str) -> None:
        """Run ``sql`` (one statement, no parameters) on the database as a client
        other than the CA would: sqlite3 or asyncpg, committed."""
        if self.name == "sqlite":
            with contextlib.closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as db:
                db.execute(sql)
                db.commit()
            return
        connection = await require_asyncpg().connect(self.url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def newest_version(self) -> int:
        """The version of the newest migration this backend ships."""
        return load_migrations(DIALECTS[self.name])[-1].version

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()  # closing twice is harmless (Store.close)


def only_on(name: str) -> pytest.MarkDecorator:
    """Run a test on the one backend ``name`` ("sqlite" or "postgresql") only, for what
    the other has not (TRUNCATE, text times): it replaces ``backend``'s two params, so
    the test is not collected, let alone skipped, on the other. Under CI a missing
    PostgreSQL still fails it (``fresh_database``)."""
    return pytest.mark.parametrize("backend", [name], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    database = (fresh_database() if request.param == "postgresql"
                else contextlib.nullcontext(f"sqlite:///{tmp_path / 'acme.db'}"))
    async with database as url:
        chosen = Backend(request.param, url)
        try:
            yield chosen
        finally:
            await chosen.close_all()


@pytest.fixture
async def store(backend: Backend) -> Store:
    """A store on the test's database, with the accounts ACCOUNT and OTHER."""
    return await with_accounts(await backend.open())


@pytest.fixture
async def other(backend: Backend, store: Store) -> Store:
    """A second store on ``store``'s database: another process or replica."""
    return await backend.open()
