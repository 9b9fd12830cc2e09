"""`acme-ca admin-cert` (issue 13 item 2: "`acme-ca admin-cert --name alice --out
alice.p12` makes one for a browser"): a PKCS#12 file (0600, key + certificate + CA
chain) under a password from a file or generated and printed once; --pem; the
certificate recorded under the admin profile with an audit entry naming who made it;
bad input is one line."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acme_ca.cli.audit import who
from acme_ca.config import load_config
from acme_ca.config_policy import ADMIN_PROFILE
from acme_ca.domain.audit import AuditAction, cli_actor
from acme_ca.domain.models import CertificateRecord, serial_hex
from acme_ca.store import open_store
from tests.cli.conftest import Run, assert_one_line_error, secret


def records(config: Path, serial: str) -> tuple[CertificateRecord, list]:
    async def read() -> tuple[CertificateRecord, list]:
        store = await open_store(load_config(config).storage.url)
        try:
            return await store.get_certificate(serial), await store.audit_entries()
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_pkcs12_with_a_generated_password_shown_once(run: Run, sqlite_ca: Path,
                                                       tmp_path: Path) -> None:
    code, out, err = run("--config", sqlite_ca, "admin-cert", "--name", "alice",
                         "--out", "alice.p12")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Admin certificate for alice (serial ")
    assert lines[1].startswith("PKCS#12 password (shown once): ")
    password = lines[1].rsplit(" ", 1)[1].encode()
    path = tmp_path / "alice.p12"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    bundle = pkcs12.load_pkcs12(path.read_bytes(), password)
    assert bundle.key is not None and bundle.cert is not None
    cert = bundle.cert.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "acme-ca admin alice"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert len(bundle.additional_certs) == 2  # the intermediate and the root
    assert password.decode() not in err

    serial = serial_hex(cert.serial_number)
    record, audit = records(sqlite_ca, serial)
    assert record.profile == ADMIN_PROFILE and record.der is not None
    (entry,) = [e for e in audit if e.serial == serial]
    assert entry.action == AuditAction.ADMIN_CERTIFICATE_ISSUED.value
    assert entry.actor == cli_actor(who()) and entry.details["name"] == "alice"


def test_the_password_from_a_file_and_a_validity(run: Run, sqlite_ca: Path,
                                                  tmp_path: Path) -> None:
    password = secret(tmp_path, "a long enough password", "p12.pass")
    code, out, err = run("--config", sqlite_ca, "admin-cert", "--name", "bob", "--out",
                         "bob.p12", "--password-file", password, "--validity", "2d")
    assert code == 0, err
    assert "password" not in out.lower()
    cert = pkcs12.load_pkcs12((tmp_path / "bob.p12").read_bytes(),
                              b"a long enough password").cert.certificate  # type: ignore[union-attr]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 2 * 86400 <= lifetime.total_seconds() <= 2 * 86400 + 120


def test_pem_writes_the_key_and_the_chain(run: Run, sqlite_ca: Path, tmp_path: Path) -> None:
    code, _, err = run("--config", sqlite_ca, "admin-cert", "--name", "carol", "--out",
                         "carol.pem", "--pem")
    assert code == 0, err
    text = (tmp_path / "carol.pem").read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----")
    assert text.count("BEGIN CERTIFICATE") == 3
    assert stat.S_IMODE(os.stat(tmp_path / "carol.pem").st_mode) == 0o600


@pytest.mark.parametrize(("args", "fragment"), [
    (["--name", "alice.smith", "--out", "x.p12"], "admin name 'alice.smith'"),
    (["--name", "alice", "--out", "x.p12", "--validity", "400d"], "at most 397 days"),
    (["--name", "alice", "--out", "x.p12", "--validity", "soon"], "--validity"),
    (["--name", "alice", "--out", "x.p12", "--password-file", "missing"],
     "cannot read passphrase file"),
    (["--name", "alice", "--out", "x.pem", "--pem", "--password-file", "p"], "--pem"),
])
def test_bad_input_is_one_line(run: Run, sqlite_ca: Path, args: list[str],
                               fragment: str) -> None:
    code, _, err = run("--config", sqlite_ca, "admin-cert", *args)
    assert_one_line_error(code, err, fragment)


def test_an_existing_file_is_never_overwritten(run: Run, sqlite_ca: Path,
                                               tmp_path: Path) -> None:
    (tmp_path / "alice.p12").write_text("keep me")
    code, _, err = run("--config", sqlite_ca, "admin-cert", "--name", "alice", "--out",
                       "alice.p12")
    assert_one_line_error(code, err, "already exists")
    assert (tmp_path / "alice.p12").read_text() == "keep me"
