"""`acme-ca db migrate` (issue 13, item 5): brings the database [storage] url names to
this acme-ca's schema on purpose, on SQLite and PostgreSQL, from nothing (a new empty
database) or from the release before; says "already at version N" when there is
nothing to do; refuses a database newer than this code and a missing SQLite file in one
line, changing nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from acme_ca.store import open_store
from acme_ca.store.migrations import load_migrations
from acme_ca.store.upgrade import migrate_database
from tests.cli.conftest import Run, assert_one_line_error
from tests.store.pg import pg_url

__all__ = ["pg_url"]  # the fixture

LATEST = len(load_migrations("sqlite"))
# What the newest migration (0010_operations) creates: gone from the release before's.
NEWEST_TABLE = "audit_log"
NEWEST_INDEXES = ("accounts_by_created", "orders_by_created", "certificates_revoked_latest",
                  "challenges_invalid")
# PostgreSQL's 0010 also makes functions (audit_log's trigger, failed_validations').
NEWEST_FUNCTIONS = ("audit_log_append_only()", "problem_type(text)")


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "acme-ca.toml"
    path.write_text(f'[storage]\nurl = "{url}"\n')
    return path


async def create(url: str) -> None:
    await (await open_store(url)).close()


def sqlite_version(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])


def test_sqlite_from_nothing_then_nothing_to_do(run: Run, tmp_path: Path) -> None:
    database = tmp_path / "ca.db"
    database.touch()  # an empty SQLite database
    path = config(tmp_path, f"sqlite:///{database}")
    code, out, err = run("--config", path, "db", "migrate")
    assert (code, out, err) == (0, f"Migrated the database from version 0 to {LATEST}.\n", "")
    assert sqlite_version(database) == LATEST
    code, out, err = run("--config", path, "db", "migrate")
    assert (code, out, err) == (
        0, f"The database is already at version {LATEST}: nothing to do.\n", "")


def test_sqlite_from_the_release_before(run: Run, tmp_path: Path) -> None:
    database = tmp_path / "ca.db"
    asyncio.run(create(f"sqlite:///{database}"))
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.execute(f"DROP TABLE {NEWEST_TABLE}")
        for index in NEWEST_INDEXES:
            conn.execute(f"DROP INDEX {index}")
        conn.execute("DELETE FROM schema_migrations WHERE version = ?", (LATEST,))
    code, out, err = run("--config", config(tmp_path, f"sqlite:///{database}"), "db",
                         "migrate")
    assert (code, out, err) == (
        0, f"Migrated the database from version {LATEST - 1} to {LATEST}.\n", "")
    with contextlib.closing(sqlite3.connect(database)) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
    assert sqlite_version(database) == LATEST


def test_a_missing_sqlite_file_is_refused_and_not_created(run: Run, tmp_path: Path) -> None:
    database = tmp_path / "nowhere" / "ca.db"
    code, _, err = run("--config", config(tmp_path, f"sqlite:///{database}"), "db", "migrate")
    assert_one_line_error(code, err, f"no database at {database}")
    assert not database.parent.exists()


def test_a_newer_sqlite_database_is_refused(run: Run, tmp_path: Path) -> None:
    database = tmp_path / "ca.db"
    asyncio.run(create(f"sqlite:///{database}"))
    with contextlib.closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'future', 'now')",
                     (LATEST + 1,))
    code, _, err = run("--config", config(tmp_path, f"sqlite:///{database}"), "db", "migrate")
    assert_one_line_error(code, err, f"schema is at version {LATEST + 1}")
    assert sqlite_version(database) == LATEST + 1


async def pg_version(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM "
                                       "schema_migrations"))
    finally:
        await conn.close()


async def back_to_the_release_before(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP TABLE {NEWEST_TABLE}")
        for index in NEWEST_INDEXES:
            await conn.execute(f"DROP INDEX {index}")
        for function in NEWEST_FUNCTIONS:
            await conn.execute(f"DROP FUNCTION {function}")
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", LATEST)
    finally:
        await conn.close()


def test_postgresql_from_nothing_and_from_the_release_before(run: Run, tmp_path: Path,
                                                             pg_url: str) -> None:
    path = config(tmp_path, pg_url)
    code, out, err = run("--config", path, "db", "migrate")
    assert (code, out, err) == (0, f"Migrated the database from version 0 to {LATEST}.\n", "")
    assert asyncio.run(pg_version(pg_url)) == LATEST
    code, out, _ = run("--config", path, "db", "migrate")
    assert out == f"The database is already at version {LATEST}: nothing to do.\n"

    asyncio.run(back_to_the_release_before(pg_url))
    code, out, err = run("--config", path, "db", "migrate")
    assert (code, out, err) == (
        0, f"Migrated the database from version {LATEST - 1} to {LATEST}.\n", "")
    assert asyncio.run(pg_version(pg_url)) == LATEST


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "mysql://ca@127.0.0.1/ca"])
def test_a_url_with_nothing_to_migrate_is_one_line(run: Run, tmp_path: Path,
                                                   url: str) -> None:
    code, _, err = run("--config", config(tmp_path, url), "db", "migrate")
    assert_one_line_error(code, err, "url")


async def told(url: str) -> list[object]:
    """What ``migrate_database`` tells while migrating ``url``."""
    said: list[object] = []
    await migrate_database(url, started=lambda *found: said.append(found),
                           applied=lambda migration: said.append(migration.version))
    return said


async def test_each_migration_is_told_as_it_is_applied(tmp_path: Path, pg_url: str) -> None:
    """What the progress bar counts (``store/upgrade.migrate_database``): the version
    found and the newest, then each migration applied, in order, on both backends."""
    database = tmp_path / "ca.db"
    database.touch()
    for url in (f"sqlite:///{database}", pg_url):
        assert await told(url) == [(0, LATEST), *range(1, LATEST + 1)]
        assert await told(url) == [(LATEST, LATEST)]
