"""`acme-ca certs` and `eab` against an operator's slips and hostile stored text: a
mistyped data directory, dates and durations out of range, serials too long, names that
hold terminal control sequences or rich markup, a closed pipe, a narrow terminal. Each
is one line and a non-zero exit, or output that stays readable and exact."""

from __future__ import annotations

import getpass
import io
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rich.console import Console

from acme_ca.cli import certs_view
from acme_ca.domain.models import CertificateRecord, CertificateStatus, serial_from_text
from tests.cli.conftest import Run, assert_one_line_error
from tests.cli.test_certs import acme_certificate


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


def _record(*names: str, serial: str = "7f" + "ab" * 15) -> CertificateRecord:
    now = datetime.now(UTC)
    return CertificateRecord(serial=serial, issuer="00" * 32, names=names, profile="server",
                             not_before=now, not_after=now + timedelta(days=7),
                             created_at=now, status=CertificateStatus.REVOKED,
                             account_id="Xy3kLm9PqR2sT7uVw1zA0b")


def _table(monkeypatch: pytest.MonkeyPatch, records: list[CertificateRecord],
           width: int = 80) -> str:
    """What `certs list` prints on a terminal ``width`` columns wide."""
    out = io.StringIO()
    monkeypatch.setattr(certs_view, "console", lambda: Console(
        file=out, width=width, force_terminal=True, color_system=None, highlight=False))
    certs_view.print_table(records, datetime.now(UTC))
    return out.getvalue()


HOSTILE = "\x1b]0;PWNED\x07\x1b[2J\x9b31mx.bluerobin.local"


def test_stored_names_are_text_not_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name holding rich markup ("[/]" crashed the listing) is printed as it is."""
    shown = _table(monkeypatch, [_record("[/]"), _record("[bold]x.bluerobin.local")], 200)
    assert "[/]" in shown and "[bold]x.bluerobin.local" in shown


def test_control_characters_reach_no_terminal(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """ESC, BEL and C1 CSI from a stored name or a subject are shown as \\xNN, in the
    table and in `certs show`, so they cannot retitle, clear or recolour the terminal."""
    shown = _table(monkeypatch, [_record(HOSTILE)], 200)
    assert "\\x1b]0;PWNED\\x07\\x1b[2J\\x9b31mx.bluerobin.local" in shown
    certs_view.print_fields({"names": [HOSTILE], "subject": f"CN={HOSTILE}"})
    printed = capsys.readouterr().out
    assert not any(c in printed for c in "\x1b\x07\x9b")
    assert "CN=\\x1b]0;PWNED" in printed


@pytest.mark.parametrize("serial", ["7f" + "ab" * 15, "7f" + "ab" * 19])
def test_at_80_columns_serial_and_status_are_whole_and_names_wrap(
        monkeypatch: pytest.MonkeyPatch, serial: str) -> None:
    """A serial copied from the table must find its certificate: never cut, never
    wrapped; STATUS whole; every column kept, NAMES wrapped (to 128 bits: 32 hex
    digits, as random_serial makes them; and to RFC 5280's 20 octets)."""
    names = ("www.bluerobin.local", "api.bluerobin.local", "mail.bluerobin.local")
    shown = _table(monkeypatch, [_record(*names, serial=serial)])
    lines = shown.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for column in ("SERIAL", "STATUS"):
        assert any(column in line for line in lines), shown
    first = next(n for n, line in enumerate(lines) if serial in line)
    assert "revoked" in lines[first], shown
    start, end = lines[first].index("www"), lines[first].index("serv")  # the NAMES column
    column = "".join(line[start:end].strip() for line in lines[first:])
    assert column == ",".join(names)  # wrapped, not dropped


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(sqlite_ca: Path) -> None:
    """`acme-ca certs list | head`: no "internal error", no traceback at exit; 141, as a
    shell reports a command SIGPIPE ended."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    try:
        done = subprocess.run([sys.executable, "-m", "acme_ca", "--config", sqlite_ca,
                               "certs", "list"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60, check=False, cwd=sqlite_ca.parent)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_serial_of_20_octets_is_read_and_a_longer_one_refused_shortly(
        run: Run, sqlite_ca: Path) -> None:
    """RFC 5280 4.1.2.2: a serial number is at most 20 octets (40 hex digits; leading
    zeros, as openssl prints them, are not significant). A longer one is refused and
    the message does not repeat the whole of what was pasted."""
    longest = "7f" + "ab" * 19
    assert serial_from_text("00:" + ":".join(longest[i:i + 2] for i in range(0, 40, 2))) \
        == longest
    pasted = "1" + "ab" * 5000
    code, _, err = run("--config", sqlite_ca, "certs", "show", pasted)
    assert_one_line_error(code, err, "has 10001 hex digits; a serial number has at most 40")
    assert len(err) < 300
    code, _, err = run("--config", sqlite_ca, "certs", "revoke", "zz" * 5000)
    assert_one_line_error(code, err, "(10000 characters) is not a serial number")
    assert len(err) < 300


def test_state_changes_leave_an_audit_line_on_stderr(
        run: Run, sqlite_ca: Path, make_csr: Callable[..., x509.CertificateSigningRequest],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Revoking (RFC 5280 5.3.1) and marking for early renewal (RFC 9773 4.2) change what
    relying parties and clients see: each names what it did, the OS user and the one
    sudo ran it for, and the CA, at WARNING level on stderr; a dry run and a refusal
    change nothing and say nothing there."""
    monkeypatch.setenv("SUDO_USER", "alice")
    csr = sqlite_ca.parent / "host.csr"
    csr.write_bytes(make_csr("db.bluerobin.local").public_bytes(Encoding.PEM))
    code, out, err = run("--config", sqlite_ca, "sign-csr", csr)
    assert code == 0, err
    serial = format(x509.load_pem_x509_certificate(out.encode()).serial_number, "x")
    cut = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    code, _, err = run("--config", sqlite_ca, "certs", "renew-early", "--issued-before", cut,
                       "--dry-run")
    assert (code, err) == (0, "")
    where = f"; by {getpass.getuser()} (sudo by alice); config {sqlite_ca}, data dir "
    code, _, err = run("--config", sqlite_ca, "certs", "renew-early", "--issued-before", cut)
    assert code == 0 and err.startswith(
        "acme-ca: audit: marked 1 unexpired certificate issued before ") and where in err
    assert "(0 marked before)" in err and err.count("\n") == 1
    code, _, err = run("--config", sqlite_ca, "certs", "revoke", serial, "--reason",
                       "superseded")
    assert err.startswith(f"acme-ca: audit: revoked the certificate {serial} "
                          "(db.bluerobin.local), reason superseded") and where in err
    code, _, err = run("--config", sqlite_ca, "certs", "revoke", serial)
    assert "audit" not in err  # already revoked: nothing changed


def test_revoke_and_renew_early_print_names_escaped(run: Run, sqlite_ca: Path) -> None:
    """What `revoke` and `renew-early` say they changed: a stored name's control
    characters as \\xNN there too, on stdout and in the audit line."""
    record = acme_certificate(sqlite_ca, "\x1b]0;PWNED\x07x.bluerobin.local")  # ASCII only
    for command in (["renew-early", record.serial], ["revoke", record.serial]):
        code, out, err = run("--config", sqlite_ca, "certs", *command)
        assert code == 0 and "\\x1b]0;PWNED" in out and "\\x1b]0;PWNED" in err
        assert not any(c in out + err for c in "\x1b\x07")
