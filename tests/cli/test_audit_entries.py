"""What the operator's commands append to the audit log (issue 13, item 4): `certs
revoke`, `certs renew-early`, `eab create | revoke` and `sign-csr`, each one entry by
``cli:<OS user>``, none when the command is refused; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from acme_ca.cli.audit import who
from acme_ca.domain.audit import AuditEntry, cli_actor, verify_chain
from acme_ca.domain.models import serial_from_text
from tests.cli.conftest import POLICY, Run, init_ca
from tests.cli.test_certs import in_store, sign_csr
from tests.store.pg import pg_url

__all__ = ["pg_url"]  # the fixture

CsrMaker = Callable[..., x509.CertificateSigningRequest]


@pytest.fixture(params=["sqlite", "postgresql"])
def ca(request: pytest.FixtureRequest, run: Run, tmp_path: Path) -> Path:
    storage = ""
    if request.param == "postgresql":
        storage = f'[storage]\nurl = "{request.getfixturevalue("pg_url")}"\n'
    return init_ca(run, tmp_path, POLICY + storage)


class Log:
    """The CA's audit log; ``new()``: the entries appended since the last call."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.seen = 0

    def new(self) -> list[AuditEntry]:
        entries: list[AuditEntry] = in_store(  # type: ignore[assignment]
            self.config, lambda store, _: store.audit_entries(after_seq=self.seen))
        if entries:
            self.seen = entries[-1].seq
        return entries


def by_the_operator(entry: AuditEntry) -> bool:
    """Appended by the OS user running the command, from no network address."""
    return entry.actor == cli_actor(who()) and entry.client_ip is None


def test_sign_csr_and_revoke_are_recorded_by_the_os_user(run: Run, ca: Path,
                                                        make_csr: CsrMaker) -> None:
    log = Log(ca)
    serial = serial_from_text(sign_csr(run, ca, make_csr, "db.bluerobin.local"))
    (issued,) = log.new()
    assert (issued.action, issued.serial, issued.identifiers) == (
        "certificate.issued", serial, ("db.bluerobin.local",))
    assert by_the_operator(issued) and issued.details["order"] is None
    code, _, err = run("--config", ca, "certs", "revoke", serial, "--reason", "keyCompromise")
    assert code == 0 and "audit: revoked" in err  # the stderr line stays
    (revoked,) = log.new()
    assert (revoked.action, revoked.serial, revoked.identifiers) == (
        "certificate.revoked", serial, ("db.bluerobin.local",))
    assert by_the_operator(revoked)
    assert revoked.details == {"by": "operator", "reason": "keyCompromise"}
    code, _, _ = run("--config", ca, "certs", "revoke", serial)  # already revoked
    assert code == 1
    code, _, _ = run("--config", ca, "certs", "revoke", "0badbad0")  # unknown
    assert code == 1
    assert log.new() == []


def test_renew_early_is_recorded_once_per_command(run: Run, ca: Path,
                                                  make_csr: CsrMaker) -> None:
    serials = [serial_from_text(sign_csr(run, ca, make_csr, f"h{n}.bluerobin.local"))
               for n in range(3)]
    log = Log(ca)
    log.new()
    assert run("--config", ca, "certs", "renew-early", serials[0])[0] == 0
    (marked,) = log.new()
    assert (marked.action, marked.serial, marked.identifiers) == (
        "certificate.renew_early", serials[0], ("h0.bluerobin.local",))
    assert by_the_operator(marked)
    assert run("--config", ca, "certs", "renew-early", serials[0])[0] == 0  # already
    assert run("--config", ca, "certs", "renew-early", "--issued-before", "2026-01-01",
               "--dry-run")[0] == 0
    assert log.new() == []
    code, _, err = run("--config", ca, "certs", "renew-early", "--issued-before",
                       "2099-01-01")  # in the future: refused
    assert code == 1, err
    assert log.new() == []


def test_renew_early_issued_before_is_one_entry_with_the_count(run: Run, ca: Path,
                                                               make_csr: CsrMaker) -> None:
    for n in range(2):
        sign_csr(run, ca, make_csr, f"h{n}.bluerobin.local")
    log = Log(ca)
    log.new()
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    code, _, err = run("--config", ca, "certs", "renew-early", "--issued-before", now)
    assert code == 0, err
    (entry,) = log.new()
    assert entry.action == "certificate.renew_early" and by_the_operator(entry)
    assert entry.serial is None and entry.identifiers == ()
    assert (entry.details["count"], entry.details["already_marked"]) == (2, 0)


def test_eab_create_and_revoke_are_recorded_without_the_hmac_key(run: Run, ca: Path) -> None:
    log = Log(ca)
    code, out, err = run("--config", ca, "eab", "create", "--label", "team blue", "--json",
                         "--domains", "blue.bluerobin.local")
    assert code == 0, err
    shown = json.loads(out)
    (created,) = log.new()
    assert created.action == "eab.key_created" and by_the_operator(created)
    assert created.details["kid"] == shown["kid"]
    assert created.details["label"] == "team blue"
    assert created.details["domains"] == "blue.bluerobin.local"
    assert shown["hmac_key"] not in json.dumps(dict(created.details))
    assert run("--config", ca, "eab", "revoke", shown["kid"])[0] == 0
    (revoked,) = log.new()
    assert (revoked.action, revoked.details["kid"], revoked.details["account"]) == (
        "eab.key_revoked", shown["kid"], None)
    assert by_the_operator(revoked)
    assert run("--config", ca, "eab", "revoke", shown["kid"])[0] == 1  # already revoked
    assert run("--config", ca, "eab", "revoke", "no-such-kid")[0] == 1
    assert log.new() == []
    entries: list[AuditEntry] = in_store(  # type: ignore[assignment]
        ca, lambda store, _: store.audit_entries())
    assert verify_chain(entries)[1] is None


def test_renew_early_issued_before_that_marks_nothing_records_nothing(
        run: Run, ca: Path, make_csr: CsrMaker) -> None:
    """Issue 13 item 4, review finding F9: an entry says something changed; a second
    `--issued-before` over certificates already marked changes nothing: no entry."""
    sign_csr(run, ca, make_csr, "h0.bluerobin.local")
    log = Log(ca)
    log.new()
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    assert run("--config", ca, "certs", "renew-early", "--issued-before", now)[0] == 0
    assert len(log.new()) == 1
    code, out, err = run("--config", ca, "certs", "renew-early", "--issued-before", now)
    assert code == 0, err
    assert "left to mark: 1 already marked" in out
    assert log.new() == []


@pytest.mark.parametrize("euid,sudo,expected", [
    (0, "alice", "{user} (sudo by alice)"),
    (1000, "alice", "{user}"),  # anyone can set SUDO_USER: trusted only as root
    (0, "al\udcffce\x1b[2J", "{user} (sudo by al\\udcffce\\x1b[2J)"),
])
def test_who_trusts_sudo_user_only_as_root_and_is_always_storable(
        monkeypatch: pytest.MonkeyPatch, euid: int, sudo: str, expected: str) -> None:
    """Review finding F4: the actor must be text the audit log can store (strict UTF-8,
    no control characters), and SUDO_USER names who ran sudo only when sudo made us
    root."""
    monkeypatch.delenv("SUDO_USER", raising=False)
    user = who()
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    monkeypatch.setenv("SUDO_USER", sudo)
    name = who()
    assert name == expected.format(user=user)
    name.encode("utf-8")  # strict: what the drivers do
