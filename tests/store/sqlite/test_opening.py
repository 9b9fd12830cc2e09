"""open_store and SQLite files: missing parent directories are made 0700 and the file
0600; a relative path is relative to the working directory; :memory: is private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from acme_ca.errors import NotFound
from acme_ca.store import SqliteStore, open_store
from acme_ca.store.migrations import load_migrations
from tests.store.conftest import make_record


async def test_open_store_creates_missing_parents_0700_and_a_0600_file(tmp_path: Path):
    existing_mode = stat.S_IMODE(tmp_path.stat().st_mode)
    path = tmp_path / "var" / "lib" / "acme-ca" / "ca.db"
    opened = await open_store(f"sqlite:///{path}")
    try:
        assert isinstance(opened, SqliteStore)
        assert await opened.schema_version() == len(load_migrations("sqlite"))
    finally:
        await opened.close()
    for folder in (tmp_path / "var", tmp_path / "var" / "lib", path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == existing_mode  # existing ones untouched


async def test_open_store_takes_a_relative_path_and_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    relative = await open_store("sqlite:///data/ca.db")
    memory = await open_store("sqlite:///:memory:")
    try:
        await relative.reserve_serial(make_record())
        assert await memory.schema_version() == len(load_migrations("sqlite"))
        with pytest.raises(NotFound):
            await memory.get_certificate("1a2b3c")
    finally:
        await relative.close()
        await memory.close()
    assert (tmp_path / "data" / "ca.db").is_file()
    assert not (tmp_path / ":memory:").exists()
