"""Progress bars on long work (issue 13, item 5): rich.progress on standard error, only
when it is a terminal. A test runs each command twice, with standard error on a
pseudo-terminal and on a pipe: the terminal sees the bar, the pipe sees nothing of it,
and standard output (what a script reads) is the same both times."""

from __future__ import annotations

import asyncio
import io
import re
import sys
from pathlib import Path

import pytest

from acme_ca.cli.progress import on_terminal, progress
from acme_ca.config import load_config
from tests.cli.conftest import secret, storage_config
from tests.cli.history import seed_url
from tests.cli.terminal import run_module

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_off_a_terminal_nothing_is_drawn(capsys: pytest.CaptureFixture[str]) -> None:
    assert not on_terminal()  # pytest captures standard error
    with progress("Working", 3) as bar:
        bar.set_total(5)
        bar.describe("Still working")
        bar.advance(2)
    assert capsys.readouterr() == ("", "")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_every_step_is_drawn_however_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bar's first description and each later one are drawn when they are given, not
    at the bar's next tick (a tenth of a second): `acme-ca init` names the intermediate
    key's step even when the key is made in a millisecond. A terminal as terminal.py
    runs them: TERM=dumb (an editor's shell) draws no bar, a narrow COLUMNS crops it."""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "100")
    with progress("Starting", None) as bar:
        bar.describe("A quick step")
        bar.describe("The last step")
    drawn = _ANSI.sub("", terminal.getvalue())
    assert all(step in drawn for step in ("Starting", "A quick step", "The last step")), drawn


def write_config(directory: Path) -> Path:
    directory.mkdir()
    config = directory / "acme-ca.toml"
    config.write_text('[server]\ndata_dir = "data"\n')
    return config


def test_key_generation_shows_on_a_terminal_only(tmp_path: Path) -> None:
    """`acme-ca init` generating an RSA 4096 root key and an intermediate, then
    `intermediate renew`: the bar on a terminal names each key; off one, stderr is
    empty and stdout unchanged."""
    said = {}
    for tty in (True, False):
        config = write_config(tmp_path / f"tty-{tty}")
        ran = run_module("acme_ca", "--config", config, "init", "--passphrase-file",
                         secret(config.parent, "progress root pass"), "--key-type", "rsa4096",
                         "--intermediate-key-type", "ec-p256", cwd=config.parent, tty=tty)
        assert ran.code == 0, ran.stderr
        said[tty] = ran
    assert "Generating the root key (rsa4096)" in _ANSI.sub("", said[True].stderr)
    assert said[False].stderr == ""
    assert "\x1b" not in said[True].stdout + said[False].stdout
    assert said[True].stdout.replace("tty-True", "tty-False") == said[False].stdout

    for tty in (True, False):  # `intermediate renew` generates a new intermediate key
        config = tmp_path / f"tty-{tty}" / "acme-ca.toml"
        ran = run_module("acme_ca", "--config", config, "intermediate", "renew",
                         "--passphrase-file", config.parent / "root.pass",
                         cwd=config.parent, tty=tty)
        assert ran.code == 0, ran.stderr
        assert ran.stdout.startswith("New intermediate ") and "\x1b" not in ran.stdout
        if tty:
            assert "Generating the new intermediate key" in _ANSI.sub("", ran.stderr)
        else:
            assert ran.stderr == ""


def test_db_migrate_bar_never_reaches_stdout(tmp_path: Path) -> None:
    for tty in (True, False):
        config = write_config(tmp_path / f"tty-{tty}")
        (config.parent / "data").mkdir()
        (config.parent / "data" / "acme-ca.db").touch()  # an empty SQLite database
        ran = run_module("acme_ca", "--config", config, "db", "migrate", cwd=config.parent,
                         tty=tty)
        assert ran.code == 0, ran.stderr
        assert re.fullmatch(r"Migrated the database from version 0 to \d+\.\n", ran.stdout)
        if tty:
            assert "Migrating the database" in _ANSI.sub("", ran.stderr)
        else:
            assert ran.stderr == ""


def test_bench_seed_bar_on_a_terminal_only(tmp_path: Path) -> None:
    for tty in (True, False):
        ran = run_module("bench", "seed", "--db", tmp_path / f"seed-{tty}.db", "--orders",
                         "300", "--certificates", "100", "--accounts", "3",
                         cwd=Path.cwd(), tty=tty)
        assert ran.code == 0, ran.stderr
        assert ran.stdout.startswith(f"seeded {tmp_path / f'seed-{tty}.db'}: 3 accounts")
        if tty:
            assert "Seeding orders" in _ANSI.sub("", ran.stderr)
        else:
            assert ran.stderr == ""





def test_bulk_revocation_bar_on_a_terminal_only(tmp_path: Path) -> None:
    """The bar counts the revocations on the terminal; the audit lines and the summary
    are the same with or without it."""
    said = {}
    for tty in (True, False):
        (tmp_path / f"tty-{tty}").mkdir()
        config = storage_config(tmp_path / f"tty-{tty}", f"sqlite:///{tmp_path}/{tty}.db")
        asyncio.run(seed_url(load_config(config).storage.url))
        said[tty] = run_module("acme_ca", "--config", config, "certs", "revoke", "--account",
                               "acct-1", "--confirm", "2", cwd=config.parent, tty=tty)
        assert said[tty].code == 0, said[tty].stderr
    assert "Revoking" in _ANSI.sub("", said[True].stderr)
    assert "Revoking" not in said[False].stderr
    assert said[False].stderr.count("acme-ca: audit: revoked the certificate") == 2
    assert said[True].stdout == said[False].stdout
    assert said[True].stdout.startswith("Revoked 2 unexpired certificates")
