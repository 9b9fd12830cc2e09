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
