"""The configuration of who may get what: certificate profiles, rate limits, retention.

    [profiles.client]                 # draft-ietf-acme-profiles; also `sign-csr --profile`
    description = "TLS clients: NATS workers, PostgreSQL clients"
    extended_key_usages = ["clientAuth"]
    default_validity = "24h"
    max_validity = "7d"
    key_types = ["ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa3072", "rsa4096"]
    identifier_types = ["dns"]
    allowed_domains = ["workers.bluerobin.local"]   # optional: a subset of [policy]'s;
                                      # then IP addresses only if identifier_types has "ip"
    retired = false                   # true: not offered, and refused at finalize

    [limits]                          # "COUNT/DURATION", or "unlimited"
    new_orders_per_account = "300/3h"

    [retention]
    grace = "30d"                     # expired orders and authorizations kept this long

``config.py`` reads these tables through the functions here; a wrong value raises
``ConfigError`` naming the key, like every other value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from acme_ca import config_values as values
from acme_ca.config_values import at_or_under_any, format_duration, parse_duration
from acme_ca.errors import ConfigError

# The extended key usages a profile may name (RFC 5280 4.2.1.12).
EXTENDED_KEY_USAGES = ("serverAuth", "clientAuth")
# The key types a profile may allow in a CSR, as `key_types` names them. "rsaN" is an
# RSA key of N bits up to the next size named (the CSR check allows 2048 to 4096 bits
# in steps of 8: an RSA 2560 key is an rsa2048).
KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa3072", "rsa4096")
IDENTIFIER_TYPES = ("dns", "ip")


@dataclass(frozen=True, slots=True)
class Profile:
    """A certificate profile: what a certificate issued under it may hold and for how long.

    ``allowed_domains`` empty means [policy] allowed_domains; otherwise names must be at
    or under one of them (and still inside [policy]'s), and it keeps out IP addresses,
    as a grant's domains do: a [profiles.NAME] table setting allowed_domains without
    identifier_types gets identifier_types ("dns",) (``read_profiles``); naming "ip"
    there explicitly issues for [policy] allowed_ip_networks too. A ``retired`` profile
    is not in the directory; a new order naming it is invalidProfile, and so is the
    finalize of an order made before it was retired."""

    name: str
    description: str
    extended_key_usages: tuple[str, ...]
    default_validity: timedelta
    max_validity: timedelta
    key_types: tuple[str, ...] = KEY_TYPES
    identifier_types: tuple[str, ...] = IDENTIFIER_TYPES
    allowed_domains: tuple[str, ...] = ()
    retired: bool = False


DEFAULT_PROFILE = "server"
# The profile of operators' certificates (``acme-ca admin-cert``, the admin listener):
# never a [profiles.NAME] table, so never offered to ACME nor signed by sign-csr.
ADMIN_PROFILE = "admin"


def default_profiles(default_validity: timedelta, max_validity: timedelta
                     ) -> dict[str, Profile]:
    """The three profiles every CA ships, with [policy]'s validity: ``server`` (the
    default), ``client`` (NATS workers, PostgreSQL clients) and ``mtls`` (both)."""

    def profile(name: str, description: str, usages: tuple[str, ...]) -> Profile:
        return Profile(name, description, usages, default_validity, max_validity)

    return {
        DEFAULT_PROFILE: profile(DEFAULT_PROFILE, "TLS servers (serverAuth)",
                                 ("serverAuth",)),
        "client": profile("client", "TLS clients (clientAuth only): NATS workers, "
                          "PostgreSQL clients", ("clientAuth",)),
        "mtls": profile("mtls", "Services that are both TLS servers and clients "
                        "(serverAuth and clientAuth)", ("serverAuth", "clientAuth")),
    }


PROFILE_KEYS = ("description", "extended_key_usages", "default_validity", "max_validity",
                "key_types", "identifier_types", "allowed_domains", "retired")
_PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def read_profiles(raw: Any, *, default_validity: timedelta, max_validity: timedelta,
                  allowed_domains: tuple[str, ...]) -> dict[str, Profile]:
    """The [profiles.NAME] tables over the defaults (a table named like a default
    replaces it, key by key); ``ConfigError`` naming ``profiles.NAME.key``.

    A profile's validity stays within [policy] max_validity (the CA's ceiling), its
    default within its maximum; its allowed_domains lie inside [policy]'s."""
    profiles = default_profiles(default_validity, max_validity)
    if raw is None:
        return profiles
    if not isinstance(raw, dict):
        raise ConfigError("profiles must be tables ([profiles.NAME])")
    for name, table in raw.items():
        if not _PROFILE_NAME.fullmatch(name):
            raise ConfigError(f"profiles.{name}: a profile name is 1 to 63 lowercase letters, "
                              "digits, '-' and '_'")
        if name == ADMIN_PROFILE:
            raise ConfigError(f"profiles.{name}: the name is reserved for admin certificates "
                              "(acme-ca admin-cert); pick another")
        if not isinstance(table, dict):
            raise ConfigError(f"profiles.{name} must be a table ([profiles.{name}])")
        unknown = sorted(set(table) - set(PROFILE_KEYS))
        if unknown:
            raise ConfigError(f"unknown key profiles.{name}.{unknown[0]} "
                              f"(known: {', '.join(PROFILE_KEYS)})")
        base = profiles.get(name)
        if base is None and "extended_key_usages" not in table:
            raise ConfigError(f"profiles.{name}.extended_key_usages is required for a new "
                              "profile (serverAuth, clientAuth or both)")
        changes: dict[str, Any] = {}
        for key, value in table.items():
            try:
                changes[key] = _PROFILE_VALUES[key](values.NO_FILES, value)
            except ValueError as exc:
                raise ConfigError(f"profiles.{name}.{key}: {exc}") from None
        if changes.get("allowed_domains") and "identifier_types" not in table:
            changes["identifier_types"] = ("dns",)  # IP addresses only when named (Profile)
        if base is None:
            base = Profile(name, name, (), default_validity, max_validity)
        profile = replace(base, **changes)
        _check_profile(profile, max_validity, allowed_domains)
        profiles[name] = profile
    return profiles


def _check_profile(profile: Profile, ceiling: timedelta, allowed: tuple[str, ...]) -> None:
    key = f"profiles.{profile.name}"
    if profile.max_validity > ceiling:
        raise ConfigError(f"{key}.max_validity ({format_duration(profile.max_validity)}) "
                          f"exceeds policy.max_validity ({format_duration(ceiling)})")
    if profile.default_validity > profile.max_validity:
        raise ConfigError(f"{key}.default_validity ({format_duration(profile.default_validity)})"
                          f" exceeds {key}.max_validity "
                          f"({format_duration(profile.max_validity)})")
    check_inside_policy(profile.allowed_domains, allowed, f"{key}.allowed_domains")


def check_inside_policy(domains: Iterable[str], allowed: tuple[str, ...], what: str) -> None:
    """``ConfigError`` naming ``what`` unless every domain is at or under one of [policy]
    allowed_domains (``allowed``): a profile's allowed_domains, an EAB key's --domains."""
    outside = [d for d in domains if not at_or_under_any(d, allowed)]
    if outside:
        raise ConfigError(f"{what}: {outside[0]} is outside [policy] allowed_domains "
                          f"({', '.join(allowed)})")


def _names(value: Any, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A non-empty list of names from ``known``, de-duplicated in order."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{value!r} is not a non-empty list of {what}")
    for item in value:
        if item not in known:
            raise ValueError(f"{item!r} is not one of {', '.join(known)}")
    return tuple(dict.fromkeys(value))


_PROFILE_VALUES: dict[str, Callable[[values.PathResolver, Any], Any]] = {
    "description": values.string,
    "extended_key_usages": lambda _, v: _names(v, EXTENDED_KEY_USAGES, "extended key usages"),
    "default_validity": values.duration,
    "max_validity": values.duration,
    "key_types": lambda _, v: _names(v, KEY_TYPES, "key types"),
    "identifier_types": lambda _, v: _names(v, IDENTIFIER_TYPES, "identifier types"),
    "allowed_domains": values.domains,
    "retired": values.boolean,
}


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` in any ``period``, refilled steadily (GCRA, as Boulder's
    ratelimits): "300/3h" allows a burst of 300, then one every 36 seconds."""

    count: int
    period: timedelta


NEW_ORDERS = "new_orders_per_account"
NEW_ACCOUNTS = "new_accounts_per_ip"
FAILED_VALIDATIONS = "failed_validations_per_identifier"
PENDING = "pending_authorizations_per_account"  # a count at once, not a rate
CERTIFICATES = "certificates_per_names"
LIMIT_NAMES = (NEW_ORDERS, NEW_ACCOUNTS, FAILED_VALIDATIONS, PENDING, CERTIFICATES)


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """[limits]: None is "unlimited". ``pending_authorizations_per_account`` is a count
    of authorizations pending at once, not a rate."""

    new_orders_per_account: Limit | None = Limit(300, timedelta(hours=3))
    new_accounts_per_ip: Limit | None = Limit(50, timedelta(hours=3))
    failed_validations_per_identifier: Limit | None = Limit(20, timedelta(hours=1))
    pending_authorizations_per_account: int | None = 1000
    certificates_per_names: Limit | None = Limit(300, timedelta(days=7))


UNLIMITED = "unlimited"
# The largest count a limit may name: past it, a limit is "unlimited".
MAX_LIMIT_COUNT = 1_000_000_000


def parse_limit(text: str) -> Limit | None:
    """"COUNT/DURATION" ("300/3h") as a ``Limit``, "unlimited" as None; ``ValueError``
    otherwise. Also reads the overrides an EAB key carries."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a string such as '300/3h'")
    if text.strip().lower() == UNLIMITED:
        return None
    count_text, sep, period_text = text.partition("/")
    count_text = count_text.strip()
    if not sep or not count_text.isdigit():
        raise ValueError(f"{text!r} is not COUNT/DURATION such as '300/3h', nor 'unlimited'")
    count = int(count_text)
    if not 0 < count <= MAX_LIMIT_COUNT:
        raise ValueError(f"{text!r}: the count must be from 1 to {MAX_LIMIT_COUNT}")
    period = parse_duration(period_text)
    if period < timedelta(microseconds=count):  # one refill a microsecond at most
        raise ValueError(f"{text!r}: more than one a microsecond; say 'unlimited'")
    return Limit(count, period)


def format_limit(limit: Limit | None) -> str:
    """What ``parse_limit`` reads back: "300/3h", or "unlimited"."""
    return UNLIMITED if limit is None else f"{limit.count}/{format_duration(limit.period)}"


def parse_count(value: Any) -> int | None:
    """pending_authorizations_per_account: a positive integer, or "unlimited" (None)."""
    if isinstance(value, str) and value.strip().lower() == UNLIMITED:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIMIT_COUNT:
        raise ValueError(f"{value!r} is not a count from 1 to {MAX_LIMIT_COUNT}, "
                         "nor 'unlimited'")
    return value


def read_limits(raw: Any) -> LimitsConfig:
    """The [limits] table; ``ConfigError`` naming ``limits.NAME``."""
    if raw is None:
        return LimitsConfig()
    if not isinstance(raw, dict):
        raise ConfigError("limits must be a table ([limits])")
    unknown = sorted(set(raw) - set(LIMIT_NAMES))
    if unknown:
        raise ConfigError(f"unknown key limits.{unknown[0]} (known: {', '.join(LIMIT_NAMES)})")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            values[name] = parse_limit_setting(name, value)
        except ValueError as exc:
            raise ConfigError(f"limits.{name}: {exc}") from None
    return LimitsConfig(**values)


def parse_limit_setting(name: str, value: Any) -> Limit | int | None:
    """One limit as [limits] and an EAB key's overrides give it: "COUNT/DURATION" or
    "unlimited", and for ``PENDING`` a count (an integer, or its text); ``ValueError``
    naming what is wrong, an unknown limit too."""
    if name not in LIMIT_NAMES:
        raise ValueError(f"unknown limit {name!r} (known: {', '.join(LIMIT_NAMES)})")
    if name == PENDING:
        is_number = isinstance(value, str) and value.strip().isdigit()
        return parse_count(int(value) if is_number else value)
    return parse_limit(value)


# The shortest [retention] grace: a row expired a moment ago may still be in use (an
# order finalized just before it expired, being signed; an authorization a new order
# is reusing), and a wall clock a little ahead of the others' must not delete it.
MIN_RETENTION_GRACE = timedelta(hours=1)


def check_retention_grace(grace: timedelta) -> timedelta:
    """``grace``, or ``ValueError`` if it is under ``MIN_RETENTION_GRACE``."""
    if grace < MIN_RETENTION_GRACE:
        raise ValueError(f"{format_duration(grace)} is too short: the grace must be at least "
                         f"{format_duration(MIN_RETENTION_GRACE)}")
    return grace


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """[retention]: how long expired orders and authorizations are kept (at least
    ``MIN_RETENTION_GRACE``)."""

    grace: timedelta = timedelta(days=30)


def read_retention(raw: Mapping[str, Any] | None) -> RetentionConfig:
    """The [retention] table; ``ConfigError`` naming ``retention.grace``."""
    if raw is None:
        return RetentionConfig()
    if not isinstance(raw, dict):
        raise ConfigError("retention must be a table ([retention])")
    unknown = sorted(set(raw) - {"grace"})
    if unknown:
        raise ConfigError(f"unknown key retention.{unknown[0]} (known: grace)")
    if "grace" not in raw:
        return RetentionConfig()
    try:
        if not isinstance(raw["grace"], str):
            raise ValueError(f"{raw['grace']!r} is not a duration such as '30d'")
        return RetentionConfig(grace=check_retention_grace(parse_duration(raw["grace"])))
    except ValueError as exc:
        raise ConfigError(f"retention.grace: {exc}") from None
