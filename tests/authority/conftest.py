"""Shared by the authority tests: a real SQLite store in the test's directory; and, for
what several replicas share, two stores on one database, SQLite or PostgreSQL; for the
CRL tests, one store on either and a hierarchy with an encrypted intermediate key; for
the OCSP tests, ocsp_setup.py's ``setup``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from acme_ca.store import Store, open_store
from tests.authority.crl_setup import PASS
from tests.authority.ocsp_setup import setup  # noqa: F401  (a fixture: the OCSP tests')
from tests.conftest import Hierarchy
from tests.store.pg import fresh_database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{db_path}")
    yield opened
    await opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, db_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database: a SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{db_path}"
        return
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def replicas(database: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one database: two replicas, as far as the database can tell."""
    first = await open_store(database)
    second = await open_store(database)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


@pytest.fixture
async def db(database: str) -> AsyncIterator[Store]:
    """One store on ``database`` (SQLite, then PostgreSQL)."""
    opened = await open_store(database)
    yield opened
    await opened.close()


@pytest.fixture
def ca(make_hierarchy: Callable[..., Hierarchy]) -> Hierarchy:
    """A hierarchy whose intermediate key is encrypted, as `renew` archives it."""
    return make_hierarchy(intermediate_passphrase=PASS)
