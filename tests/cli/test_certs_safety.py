"""`acme-ca certs` and `eab` against an operator's slips and hostile stored text: a
mistyped data directory, dates and durations out of range, serials too long, names that
hold terminal control sequences or rich markup, a closed pipe, a narrow terminal. Each
is one line and a non-zero exit, or output that stays readable and exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Run, assert_one_line_error


@pytest.mark.parametrize("command", [["certs", "list"], ["certs", "show", "ab"],
                                     ["certs", "revoke", "ab"],
                                     ["certs", "renew-early", "ab"],
                                     ["eab", "list"], ["eab", "revoke", "kid"]])
def test_a_missing_sqlite_database_is_refused_and_not_created(
        run: Run, tmp_path: Path, command: list[str]) -> None:
    """A mistyped --data-dir would otherwise answer from a new, empty database."""
    typo = tmp_path / "typo"
    code, out, err = run("--data-dir", typo, *command)
    assert_one_line_error(code, err, f"no database at {typo / 'acme-ca.db'}; is "
                         "--data-dir/--config right?")
    assert out == "" and not typo.exists()


@pytest.mark.parametrize(("args", "fragment"), [
    (["renew-early", "--issued-before", "9999-12-31T23:59:59-23:59"], "out of range in UTC"),
    (["renew-early", "--issued-before", "0001-01-01T00:00:00+23:59"], "out of range in UTC"),
    (["renew-early", "--issued-before", "\uff12\uff10\uff12\uff16-12-01"], "is not an RFC 3339"),
    (["renew-early", "--issued-before", "2026-12-0\u0661"], "is not an RFC 3339"),
    (["list", "--expiring-within", "3000000d"], "'3000000d' is longer than 36500d"),
    (["list", "--expiring-within", "99999999999999d"], "too long a duration"),
])
def test_dates_and_durations_out_of_range_are_one_line(
        run: Run, sqlite_ca: Path, args: list[str], fragment: str) -> None:
    """RFC 3339 5.6: digits are ASCII; a moment its offset moves past year 9999 (or
    before year 1), a window past the last date, is a mistake, not an internal error."""
    code, out, err = run("--config", sqlite_ca, "certs", *args)
    assert_one_line_error(code, err, fragment)
    assert out == ""
