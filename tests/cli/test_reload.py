"""SIGHUP's configuration reload (issue 13 item 7; ``cli/reload.py``): what can change now
changes, what needs a restart keeps its running value with one warning line each, and
a file that does not load changes nothing, with one error line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.authority.settings import Settings
from acme_ca.cli.reload import reload_config
from acme_ca.config import Config, load_config

BASE = """
[server]
listen = "127.0.0.1:8555"
workers = 1
[storage]
url = "sqlite:///{dir}/acme.db"
[policy]
default_validity = "1d"
"""


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "acme-ca.toml"
    path.write_text(BASE.format(dir=tmp_path))
    return path


def loader(path: Path) -> Callable[[], Config]:
    return lambda: load_config(path, {"server.data_dir": str(path.parent / "data")})


def started(path: Path) -> tuple[Settings, Config]:
    config = loader(path)()
    return Settings(config), config


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_runtime_settings_take_effect(path: Path, caplog: pytest.LogCaptureFixture):
    settings, _ = started(path)
    path.write_text(BASE.format(dir=path.parent).replace('"1d"', '"2d"')
                    + '[acme]\nwebsite = "https://ca.example/"\n'
                    + '[limits]\nnew_orders_per_account = "10/1h"\n')
    caplog.set_level(logging.INFO)
    assert reload_config(settings, loader(path)) is True
    assert settings.current.policy.default_validity == timedelta(days=2)
    assert settings.current.acme.website == "https://ca.example/"
    assert settings.current.limits != Config.__dataclass_fields__["limits"].default_factory()
    assert lines(caplog, logging.WARNING) == []
    assert any("configuration applied" in line and "[policy]" in line
               for line in lines(caplog, logging.INFO))


def test_restart_only_settings_keep_their_running_value_one_warning_each(
    path: Path, caplog: pytest.LogCaptureFixture
):
    settings, running = started(path)
    text = BASE.format(dir=path.parent)
    path.write_text(text.replace("127.0.0.1:8555", "127.0.0.1:9555").replace(
        "workers = 1", "workers = 3").replace("acme.db", "other.db")
        + '[admin]\nlisten = "127.0.0.1:8557"\n')
    caplog.set_level(logging.INFO)
    assert reload_config(settings, loader(path)) is False  # nothing else changed
    assert settings.current == running
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 4
    for name in ("[server] listen", "[server] workers", "[storage]", "[admin] listen"):
        assert sum(name in line for line in warnings) == 1, (name, warnings)
    assert all("next restart" in line for line in warnings)


def test_a_file_that_does_not_load_changes_nothing_one_error_line(
    path: Path, caplog: pytest.LogCaptureFixture
):
    settings, running = started(path)
    path.write_text("[policy\ndefault_validity = ")
    assert reload_config(settings, loader(path)) is False
    path.write_text(BASE.format(dir=path.parent).replace('"1d"', '"forever"'))
    assert reload_config(settings, loader(path)) is False
    assert settings.current is running
    errors = lines(caplog, logging.ERROR)
    assert len(errors) == 2
    assert all(e.startswith("reload: the configuration does not load") for e in errors)
    assert "default_validity" in errors[1]
