"""The configuration keys of issue 13: ``[admin] listen`` (item 2, "default off"),
``[server] log_format`` (item 3, "text stays the default") and ``[server]
shutdown_timeout`` (item 7, the deadline of a graceful stop): their defaults, the
example file documenting them, and one line naming the key for a wrong value."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.config import load_config
from acme_ca.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "acme-ca.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_defaults_admin_off_text_logs_30s(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.admin.listen is None and config.admin.listen_port is None
    assert config.server.log_format == "text"
    assert config.server.shutdown_timeout == timedelta(seconds=30)


def test_the_example_config_documents_them() -> None:
    """config.example.toml names each key with its default (the admin listener as the
    commented example docs/operations.md shows)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    server = tomllib.loads(text)["server"]
    assert (server["log_format"], server["shutdown_timeout"]) == ("text", "30s")
    assert '[admin]\n' in text and '# listen = "127.0.0.1:8557"' in text
    config = load_config(EXAMPLE)
    assert (config.server.log_format, config.server.shutdown_timeout) == (
        "text", timedelta(seconds=30))
    assert config.admin.listen is None


def test_the_values_operations_md_shows_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[server]\nlog_format = "json"\n'
                                         'shutdown_timeout = "2m"\n'
                                         '[admin]\nlisten = "127.0.0.1:8557"\n'))
    assert config.server.log_format == "json"
    assert config.server.shutdown_timeout == timedelta(minutes=2)
    assert (config.admin.listen, config.admin.listen_port) == ("127.0.0.1:8557", 8557)


@pytest.mark.parametrize(("text", "key"), [
    ('[server]\nlog_format = "xml"\n', "server.log_format"),
    ('[server]\nshutdown_timeout = "0s"\n', "server.shutdown_timeout"),
    ('[server]\nshutdown_timeout = "11m"\n', "server.shutdown_timeout"),
    ('[admin]\nlisten = "nowhere"\n', "admin.listen"),
    ('[server]\nlisten = "127.0.0.1:8555"\n[admin]\nlisten = "127.0.0.1:8555"\n',
     "admin.listen"),
    ('[admin]\nport = 8557\n', "admin.port"),
])
def test_a_wrong_value_is_one_error_naming_the_key(tmp_path: Path, text: str,
                                                   key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(write(tmp_path, text))
    assert key in str(refused.value) and "\n" not in str(refused.value)
