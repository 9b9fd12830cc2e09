"""`acme-ca certs revoke --account ID | --issued-before DATE` (issue 13, item 5): many
certificates revoked through the operator's revocation, one by one, only after the
count is confirmed; on SQLite and PostgreSQL, over ``tests/cli/history.py``'s rows.

Chosen: signed, unrevoked, unexpired certificates (RFC 5280 5: an expired one need
not appear on a CRL) of the account and/or issued before the moment."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path

import pytest

from acme_ca.config import load_config
from acme_ca.domain.models import CertificateStatus
from acme_ca.store import open_store
from tests.cli.conftest import Run, assert_one_line_error, storage_config
from tests.cli.history import DAY, NOW, seed_url
from tests.cli.terminal import run_module


def revoked(config: Path) -> dict[str, int | None]:
    """The revoked serials, with their reason codes."""

    async def read() -> dict[str, int | None]:
        store = await open_store(load_config(config).storage.url)
        try:
            records = await store.list_certificates(status=CertificateStatus.REVOKED)
            return {r.serial: r.revocation_reason for r in records}
        finally:
            await store.close()

    return asyncio.run(read())


def test_an_accounts_certificates_after_confirming_their_count(run: Run,
                                                               history: Path) -> None:
    code, out, err = run("--config", history, "certs", "revoke", "--account", "acct-1",
                         "--dry-run")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "  a1  a1.bluerobin.local", "  a2  a2.bluerobin.local",
        "Would revoke 2 unexpired certificates of the account acct-1, reason unspecified. "
        "Nothing was changed (--dry-run)."]
    code, _, err = run("--config", history, "certs", "revoke", "--account", "acct-1")
    assert_one_line_error(code, err, "2 unexpired certificates of the account acct-1 "
                          "match: give --confirm 2 to revoke them")
    code, _, err = run("--config", history, "certs", "revoke", "--account", "acct-1",
                       "--confirm", "3")
    assert_one_line_error(code, err, "--confirm 3, but 2 unexpired certificates")
    assert revoked(history) == {}

    code, out, err = run("--config", history, "certs", "revoke", "--account", "acct-1",
                         "--confirm", "2", "--reason", "keyCompromise")
    assert code == 0, err
    assert out.startswith("Revoked 2 unexpired certificates of the account acct-1, reason "
                          "keyCompromise.")
    assert [line.split(";")[0] for line in err.splitlines()] == [
        "acme-ca: audit: revoked the certificate a1 (a1.bluerobin.local), reason "
        "keyCompromise",
        "acme-ca: audit: revoked the certificate a2 (a2.bluerobin.local), reason "
        "keyCompromise"]
    assert revoked(history) == {"a1": 1, "a2": 1}
    code, out, _ = run("--config", history, "audit", "list", "--action",
                       "certificate.revoked", "--json")
    assert [(e["serial"], e["actor"], e["details"]["by"]) for e in json.loads(out)] == [
        ("a1", f"cli:{getpass.getuser()}", "operator"),
        ("a2", f"cli:{getpass.getuser()}", "operator")]  # one entry each, as certs revoke
    code, out, _ = run("--config", history, "certs", "revoke", "--account", "acct-1")
    assert (code, out) == (0, "No unexpired certificates of the account acct-1: nothing "
                           "to revoke.\n")


def test_issued_before_with_and_without_an_account(run: Run, history: Path) -> None:
    """Before a day ago: a1 and b1 (and 5c1, a sign-csr certificate of no account); a3
    expired, a2 issued an hour ago."""
    day_ago = (NOW - DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out, _ = run("--config", history, "certs", "revoke", "--issued-before", day_ago,
                       "--account", "acct-2", "--dry-run")
    assert code == 0 and out.splitlines()[0] == "  b1  b1.bluerobin.local"
    code, out, err = run("--config", history, "certs", "revoke", "--issued-before",
                         "2026-01-01", "--dry-run")
    assert (code, err) == (0, "")
    assert out.startswith("No unexpired certificates issued before 2026-01-01 00:00:00 UTC")
    code, out, err = run("--config", history, "certs", "revoke", "--issued-before",
                         day_ago, "--confirm", "3", "--reason", "cessationOfOperation")
    assert code == 0, err
    assert revoked(history) == {"a1": 5, "b1": 5, "5c1": 5}


@pytest.mark.parametrize(("argv", "said"), [
    ([], "give either a SERIAL or --account ID"),
    (["1a", "--account", "acct-1"], "give either a SERIAL or --account ID"),
    (["1a", "--dry-run"], "--dry-run and --confirm go with --account"),
    (["--account", "acct-9", "--dry-run"], "no account has the id acct-9"),
    (["--issued-before", "2999-01-01", "--dry-run"], "is in the future"),
    (["--issued-before", "last week"], "--issued-before: 'last week' is not an RFC 3339"),
])
def test_mistakes_are_one_line(run: Run, history: Path, argv: list[str], said: str) -> None:
    code, _, err = run("--config", history, "certs", "revoke", *argv)
    assert_one_line_error(code, err, said)
    assert revoked(history) == {}


@pytest.mark.parametrize(("typed", "revoked_now"), [("2", {"a1": 0, "a2": 0}), ("3", {}),
                                                    ("", {})])
def test_on_a_terminal_the_count_is_typed_back(tmp_path: Path, typed: str,
                                               revoked_now: dict[str, int]) -> None:
    """Standard input a terminal and no --confirm: the command asks; only the count
    itself, typed back, revokes."""
    config = storage_config(tmp_path, f"sqlite:///{tmp_path / 'ca.db'}")
    asyncio.run(seed_url(load_config(config).storage.url))
    ran = run_module("acme_ca", "--config", config, "certs", "revoke", "--account", "acct-1",
                     cwd=tmp_path, tty=True, typed=typed)
    assert "Type 2 to revoke them: " in ran.stdout
    if revoked_now:
        assert ran.code == 0 and "Revoked 2 unexpired certificates" in ran.stdout
    else:
        assert ran.code == 1
        assert "acme-ca: error: not confirmed; nothing was revoked" in ran.stderr
    assert revoked(config) == revoked_now
