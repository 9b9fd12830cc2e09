"""Shared by the authority tests: a real SQLite store in the test's directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acme_ca.store import Store, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store("sqlite:///" + str(tmp_path / "db.sqlite"))
    yield opened
    await opened.close()
