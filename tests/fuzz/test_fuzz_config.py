"""Fuzz: the TOML configuration (acme_ca/config.py) raises ConfigError and nothing else.

Inputs: arbitrary text and bytes as the file; config.example.toml with values replaced
by other TOML values (strings that are nearly right among them: huge durations, paths
under an unknown user's home, NUL bytes); whole files built from the schema's keys
with any values; and command-line overrides of any text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from acme_ca.config import _SCHEMA, load_config
from acme_ca.errors import ConfigError
from tests.fuzz.strategies import ANY_CHAR, NEAR_TEXT, fuzz, only_raises

EXAMPLE = (Path(__file__).parents[2] / "config.example.toml").read_text(encoding="utf-8")
KEYS = [f"{section}.{key}" for section, table in _SCHEMA.items() for key in table]

# Strings that are nearly a valid value of some key.
NEAR_VALUES = st.sampled_from([
    "7d", "0s", "99999999999999999999d", "1h30m", "٣d", "²s", "-1d", " 24h ",
    "127.0.0.1:8555", "[::1]:0", ":443", "host:99999", "[::1]", "10.0.0.1:5٣",
    "10.0.0.0/8", "10.0.0.1/33", "fe80::/10", "::/0",
    "https://ca.bluerobin.local", "https://", "http://x/%", "sqlite:///x.db",
    "sqlite:///:memory:", "postgresql://u@h/db", "sqlite://", "~nosuchuser-acme/x",
    "~/x", "a\x00b", "/", ".", "bluerobin.local", "*.bluerobin.local", "",
])
TOML_STRING = (st.text(ANY_CHAR, max_size=30) | NEAR_TEXT | NEAR_VALUES).map(json.dumps)
TOML_SCALAR = (
    TOML_STRING
    | st.integers().map(str)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.floats(allow_nan=False).map(lambda f: repr(f).replace("inf", "inf"))
    | st.sampled_from(["true", "false", "nan", "inf", "-inf", "1979-05-27T07:32:00Z",
                       "1979-05-27", "07:32:00", "0x10", "1_000", "'literal'", "[]", "{}"])
)
TOML_VALUE = st.recursive(
    TOML_SCALAR,
    lambda inner: (st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
                   | st.dictionaries(TOML_STRING, inner, max_size=3).map(
                       lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}")),
    max_leaves=8,
)
ASSIGNMENT = re.compile(r"^(# ?)?([a-z_0-9]+) = .*$", re.MULTILINE)


def load(path: Path, data: bytes, overrides: dict[str, Any] | None = None) -> Any:
    path.write_bytes(data)
    return only_raises(lambda: load_config(path, overrides), ConfigError)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


@fuzz()
@given(st.text(ANY_CHAR).map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary())
def test_any_file(config_path: Path, data: bytes) -> None:
    load(config_path, data)


ASSIGNMENTS = len(ASSIGNMENT.findall(EXAMPLE))


@fuzz(2)
@given(st.dictionaries(st.integers(0, ASSIGNMENTS - 1), TOML_VALUE, max_size=4))
@example({})
def test_example_with_values_replaced(config_path: Path, replaced: dict[int, str]) -> None:
    """config.example.toml with a few of its assignments (commented ones too) given
    another TOML value, uncommented; unchanged, it loads."""
    count = iter(range(ASSIGNMENTS))

    def replace(match: re.Match[str]) -> str:
        value = replaced.get(next(count))
        return match.group(0) if value is None else f"{match.group(2)} = {value}"

    text = ASSIGNMENT.sub(replace, EXAMPLE)
    load(config_path, text.encode("utf-8", "surrogatepass"))


@fuzz()
@given(st.dictionaries(st.sampled_from(KEYS), TOML_VALUE, max_size=6))
@example({"policy.max_validity": '"99999999999999999999d"'})  # was OverflowError
@example({"server.data_dir": '"~nosuchuser-acme/data"'})  # was RuntimeError
def test_files_from_the_schema(config_path: Path, values: dict[str, str]) -> None:
    """Files of the schema's own sections and keys, with any TOML values."""
    sections: dict[str, list[str]] = {}
    for dotted, value in values.items():
        section, _, key = dotted.partition(".")
        sections.setdefault(section, []).append(f"{key} = {value}")
    text = "\n".join(f"[{s}]\n" + "\n".join(lines) for s, lines in sections.items())
    load(config_path, text.encode("utf-8", "surrogatepass"))


@fuzz()
@given(st.dictionaries(st.sampled_from(KEYS) | NEAR_TEXT, NEAR_VALUES | NEAR_TEXT, max_size=4))
@example({"server.data_dir": "~nosuchuser-acme/x"})  # was RuntimeError from pathlib
def test_overrides(config_path: Path, overrides: dict[str, str]) -> None:
    """Command-line overrides (dotted names, text values) of the example file."""
    load(config_path, EXAMPLE.encode(), overrides)


def test_the_example_loads(config_path: Path) -> None:
    """The seed of the mutations is a valid file."""
    assert load(config_path, EXAMPLE.encode()) is not None
