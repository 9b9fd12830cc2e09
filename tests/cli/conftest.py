"""Fixtures and helpers of the command-line tests: a clean working directory, `run`, a
CA made by `init` under a given configuration, the one-line error check, and `serve`
run as a real process (`serving`)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from acme_ca.cli.main import main
from acme_ca.config import Config, load_config
from acme_ca.store import open_store
from tests.store.pg import pg_url

__all__ = ["pg_url"]  # the fixture, for ``database``

Run = Callable[..., tuple[int, str, str]]
ENV_VARS = ("ACME_CA_CONFIG", "ACME_CA_ROOT_PASSPHRASE", "ACME_CA_INTERMEDIATE_PASSPHRASE")
ROOT_PASS = "cli root passphrase"
FAST = ["--key-type", "ec-p384", "--intermediate-key-type", "ec-p256"]
POLICY = """\
[policy]
allowed_domains = ["bluerobin.local"]
denied_domains = ["secret.bluerobin.local"]
allowed_ip_networks = ["10.0.0.0/8"]
"""


def secret(tmp_path: Path, text: str, name: str = "root.pass") -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


@contextmanager
def serving(config: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`acme-ca --config CONFIG serve` as a real process in a session of its own, for the
    body to drive (`until_serving`); after the body, SIGTERM stops it with status 0.
    Whatever happens, it and its workers are killed if still running (by its process
    group) and its pipes drained."""
    process = subprocess.Popen([sys.executable, "-m", "acme_ca", "--config", str(config),
                                "serve"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        yield process
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def until_serving(process: subprocess.Popen[str]) -> None:
    """Read `serve`'s stdout up to its "serving" line (its event loop runs: ready); fail
    with its stderr if the output ends first."""
    assert process.stdout is not None and process.stderr is not None
    lines = iter(process.stdout.readline, "")
    assert any("serving" in line for line in lines), process.stderr.read()


def assert_one_line_error(code: int, err: str, fragment: str, status: int = 1) -> None:
    assert code == status, (code, err)
    assert err.startswith("acme-ca: error: ") and fragment in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def init_ca(run: Run, tmp_path: Path, policy: str) -> Path:
    """Write `policy` to tmp_path/acme-ca.toml and run `init` with it, then create its
    database as `serve` would (`certs` and `eab` refuse a missing one): that file."""
    path = tmp_path / "acme-ca.toml"
    path.write_text(policy)
    code, _, err = run("--config", path, "init", "--passphrase-file",
                       secret(tmp_path, ROOT_PASS), *FAST)
    assert code == 0, err
    create_database(load_config(path))
    return path


def storage_config(tmp_path: Path, url: str) -> Path:
    """tmp_path/acme-ca.toml naming the database ``url``, created and migrated."""
    path = tmp_path / "acme-ca.toml"
    path.write_text(f'[storage]\nurl = "{url}"\n')
    create_database(load_config(path))
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A configuration naming a new database, SQLite (tmp_path/ca.db) or PostgreSQL (one
    of the test's own, ``pg_url``), created and migrated."""
    if request.param == "sqlite":
        return storage_config(tmp_path, f"sqlite:///{tmp_path / 'ca.db'}")
    return storage_config(tmp_path, request.getfixturevalue("pg_url"))


@pytest.fixture
def history(database: Path) -> Path:
    """``database`` holding ``tests/cli/history.py``'s rows."""
    from tests.cli.history import seed_url

    asyncio.run(seed_url(load_config(database).storage.url))
    return database


def create_database(config: Config) -> None:
    """The database [storage] url names, created and migrated (as `serve` does)."""

    async def create() -> None:
        await (await open_store(config.storage.url)).close()

    asyncio.run(create())


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(*argv: object) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def sqlite_ca(run: Run, tmp_path: Path) -> Path:
    """A CA made by `init` under POLICY, its SQLite database created: the configuration
    file."""
    return init_ca(run, tmp_path, POLICY)
