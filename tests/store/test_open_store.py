"""open_store picks a backend by the scheme of ``storage.url`` and refuses any other
URL, without repeating it (a database URL may hold a password)."""

from __future__ import annotations

import pytest

from acme_ca.errors import ConfigError
from acme_ca.store import open_store


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ca.db",
        "sqlite:///",
        "sqlite://ca.db",
        "sqlite:ca.db",
        "mysql://acme:secret@db.example.test/acme",
    ],
)
async def test_open_store_refuses_other_urls_without_echoing_them(url: str):
    with pytest.raises(ConfigError, match=r"storage\.url.*sqlite:///") as caught:
        await open_store(url)
    assert "secret" not in str(caught.value)
