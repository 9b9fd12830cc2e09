"""`serve` with a storage URL asyncpg would misread: one line, exit 1, and no part of
the database password (it was "internal error: ValueError: invalid literal for int()
... 'S3cr3t'", exit 70, for a password holding a raw "/")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Run, assert_one_line_error
from tests.store.pg import require_asyncpg

SECRET = "S3cr3tPW"


@pytest.mark.parametrize("url", [
    f"postgresql://acme:{SECRET}/x@127.0.0.1:5432/acme",
    f"postgresql://acme:{SECRET}@127.0.0.1:99999/acme",
    f"postgresql://acme:{SECRET}@[::1/acme",
])
def test_serve_with_a_malformed_storage_url_says_so_without_the_password(
    run: Run, tmp_path: Path, url: str
) -> None:
    require_asyncpg()
    config = tmp_path / "acme-ca.toml"
    config.write_text(f'[storage]\nurl = "{url}"\n')
    code, _, err = run("--config", config, "serve")
    assert_one_line_error(code, err, "storage.url is not a valid PostgreSQL URL")
    assert not any(SECRET[i:i + 3] in err for i in range(len(SECRET) - 2)), err
