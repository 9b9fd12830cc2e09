"""The one holder of the settings in force (issue 13 item 7, SIGHUP): derived values are
rebuilt from a swapped configuration all together or not at all."""

from __future__ import annotations

from datetime import timedelta

import pytest

from acme_ca.authority.settings import Settings
from acme_ca.config import Config, load_config


def config(validity: str) -> Config:
    return load_config(None, {"policy.default_validity": validity})


def test_derived_values_follow_a_swap_and_listeners_hear_it():
    settings = Settings(config("1d"))
    validity = settings.derive(lambda c: c.policy.default_validity)
    heard: list[timedelta] = []
    settings.on_swap(lambda c: heard.append(c.policy.default_validity))
    assert validity() == timedelta(days=1)
    settings.swap(config("2d"))
    assert validity() == timedelta(days=2) == settings.current.policy.default_validity
    assert heard == [timedelta(days=2)]


def test_a_build_that_fails_leaves_every_value_and_the_configuration_as_they_were():
    """The first value would build; the second refuses: neither changes, nor the
    configuration, and no listener hears of it."""
    first = config("1d")
    settings = Settings(first)
    validity = settings.derive(lambda c: c.policy.default_validity)

    def refuse_three_days(c: Config) -> str:
        if c.policy.default_validity == timedelta(days=3):
            raise ValueError("refused")
        return "built"

    other = settings.derive(refuse_three_days)
    heard: list[Config] = []
    settings.on_swap(heard.append)
    with pytest.raises(ValueError, match="refused"):
        settings.swap(config("3d"))
    assert settings.current is first
    assert validity() == timedelta(days=1) and other() == "built"
    assert heard == []
