"""[limits] (config_policy.read_limits, parse_limit): "COUNT/DURATION" or "unlimited";
a wrong value is a ConfigError naming the key, as every other value is."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.config import load_config
from acme_ca.config_policy import Limit, LimitsConfig, format_limit, parse_limit, read_retention
from acme_ca.errors import ConfigError


def test_without_a_limits_table_the_defaults_hold():
    assert load_config(None).limits == LimitsConfig()


def test_a_limits_table_replaces_the_limits_it_names(tmp_path: Path):
    path = tmp_path / "acme-ca.toml"
    path.write_text('[limits]\nnew_orders_per_account = "10/1h"\n'
                    'new_accounts_per_ip = "unlimited"\n'
                    'pending_authorizations_per_account = 25\n', encoding="utf-8")
    limits = load_config(path).limits
    assert limits.new_orders_per_account == Limit(10, timedelta(hours=1))
    assert limits.new_accounts_per_ip is None
    assert limits.pending_authorizations_per_account == 25
    assert limits.certificates_per_names == LimitsConfig().certificates_per_names


@pytest.mark.parametrize("text", ["300/3h", "1/1s", "20/90m", "unlimited"])
def test_a_limit_reads_back_as_it_is_written(text: str):
    assert format_limit(parse_limit(text)) == text


@pytest.mark.parametrize(("key", "value", "says"), [
    ("new_orders_per_account", "300", "COUNT/DURATION"),
    ("new_orders_per_account", "0/1h", "from 1"),
    ("new_orders_per_account", "10/0s", "positive"),
    ("new_orders_per_account", "2000000/1s", "microsecond"),
    ("new_orders_per_account", 300, "string"),
    ("pending_authorizations_per_account", "300/3h", "count"),
    ("pending_authorizations_per_account", 0, "count"),
    ("orders_per_day", "1/1d", "unknown key limits.orders_per_day"),
])
def test_a_wrong_limit_is_refused_naming_its_key(key: str, value: object, says: str):
    with pytest.raises(ConfigError) as refused:
        load_config(None, {f"limits.{key}": value})
    assert says in str(refused.value)
    assert f"limits.{key}" in str(refused.value)


def test_the_example_config_documents_the_defaults():
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    assert load_config(example).limits == LimitsConfig()


@pytest.mark.parametrize("grace", ["1s", "30m", "59m"])
def test_a_retention_grace_under_an_hour_is_refused(grace: str):
    """A grace of seconds would prune an order finalized just before it expired while
    the issuer signs it, and race a new order reusing an authorization."""
    with pytest.raises(ConfigError, match=r"retention\.grace: .*at least 1h"):
        read_retention({"grace": grace})


def test_a_retention_grace_of_an_hour_or_more_is_read():
    assert read_retention({"grace": "1h"}).grace == timedelta(hours=1)
    assert read_retention(None).grace == timedelta(days=30)


@pytest.mark.parametrize(("toml", "says"), [
    ("limits = 3\n", "limits must be a table"),
    ("profiles = 3\n", "profiles must be tables"),
    ("retention = 3\n", "retention must be a table"),
    ("[retention]\nkeep = \"30d\"\n", "unknown key retention.keep"),
    ("[retention]\ngrace = 30\n", "retention.grace: 30 is not a duration"),
])
def test_a_wrong_policy_table_is_refused_naming_it(tmp_path: Path, toml: str, says: str):
    """The tables config_policy reads are checked as every other section is: one line
    naming what is wrong, never a traceback."""
    path = tmp_path / "acme-ca.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=says):
        load_config(path)
