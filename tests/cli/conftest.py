"""Fixtures of the command-line tests: a clean working directory and `run`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from acme_ca.cli.main import main

Run = Callable[..., tuple[int, str, str]]
ENV_VARS = ("ACME_CA_CONFIG", "ACME_CA_ROOT_PASSPHRASE", "ACME_CA_INTERMEDIATE_PASSPHRASE")


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
