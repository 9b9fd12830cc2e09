"""What an operator types to `acme-ca certs`, read or refused in one line: a serial
(as `certs list` or openssl prints it), a revocation reason (RFC 5280 5.3.1, by name),
a moment (RFC 3339) and a duration."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from acme_ca.authority.revocation import OPERATOR_REASONS
from acme_ca.config import parse_duration
from acme_ca.domain.models import serial_from_text
from acme_ca.errors import ConfigError

LONGEST_WINDOW = timedelta(days=36_500)  # --expiring-within: 100 years covers any root


def parse_serial(text: str) -> str:
    try:
        return serial_from_text(text)
    except ValueError as exc:
        raise ConfigError(f"serial: {exc}") from None


def parse_reason(name: str) -> int:
    by_lower = {known.lower(): code for known, code in OPERATOR_REASONS.items()}
    code = by_lower.get(name.lower())
    if code is None:
        raise ConfigError(f"--reason: {name!r} is not a revocation reason an operator may "
                          f"give (allowed: {', '.join(OPERATOR_REASONS)})")
    return code


_RFC3339 = re.compile(  # ASCII digits only (RFC 3339 5.6), not any Unicode \d
    r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2}))?", re.ASCII)


def parse_moment(text: str, option: str = "--issued-before") -> datetime:
    """An RFC 3339 date (midnight UTC) or date-time (with its offset), in UTC."""
    try:
        if not _RFC3339.fullmatch(text):
            raise ValueError
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option}: {text!r} is not an RFC 3339 date or date-time "
                          "(2026-12-01, 2026-12-01T12:00:00Z)") from None
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # its offset moves it past year 9999 or before year 1
        raise ConfigError(f"{option}: {text!r} is out of range in UTC") from None


def parse_window(option: str, text: str) -> timedelta:
    """A duration (``parse_duration``) no longer than ``LONGEST_WINDOW``: now + it must
    stay a date."""
    try:
        window = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None
    if window > LONGEST_WINDOW:
        raise ConfigError(f"{option}: {text!r} is longer than {LONGEST_WINDOW.days}d")
    return window
