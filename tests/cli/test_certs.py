"""`acme-ca certs revoke | list | show | renew-early` (issue 12, item 4), in process, on a
CA made by `init`, with a real store: SQLite, and PostgreSQL for the commands that write.

The operator revokes any certificate, a sign-csr one (no account) as well as an ACME
one, with an RFC 5280 5.3.1 reason by name; marks certificates for early renewal, whose
renewal information (RFC 9773 4.2) then suggests a window in the past. Every mistake is
one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from acme_ca.authority import issuance
from acme_ca.cli import certs_args, store_session
from acme_ca.cli.secrets import intermediate_passphrase
from acme_ca.config import Config, load_config
from acme_ca.domain.models import CertificateRecord, CertificateStatus, serial_from_text
from acme_ca.encoding import b64url_encode
from acme_ca.pki import files
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import LeafRequest
from acme_ca.store import open_store
from tests.cli.conftest import POLICY, Run, assert_one_line_error, init_ca
from tests.store.conftest import ACCOUNT, make_authorization, make_order, with_accounts
from tests.store.pg import pg_url

__all__ = ["pg_url"]  # the fixture

CsrMaker = Callable[..., x509.CertificateSigningRequest]


@pytest.fixture(params=["sqlite", "postgresql"])
def ca(request: pytest.FixtureRequest, run: Run, tmp_path: Path) -> Path:
    """A CA made by `init`, its database SQLite in its data directory or PostgreSQL:
    the configuration file."""
    storage = ""
    if request.param == "postgresql":
        storage = f'[storage]\nurl = "{request.getfixturevalue("pg_url")}"\n'
    return init_ca(run, tmp_path, POLICY + storage)


def sign_csr(run: Run, config: Path, make_csr: CsrMaker, *names: str) -> str:
    """A certificate issued by `acme-ca sign-csr` (no account): its serial, as
    `openssl x509 -serial` prints it (upper case)."""
    csr = config.parent / "host.csr"
    csr.write_bytes(make_csr(*names).public_bytes(Encoding.PEM))
    code, out, err = run("--config", config, "sign-csr", csr)
    assert code == 0, err
    return format(x509.load_pem_x509_certificate(out.encode()).serial_number, "X")


def in_store(config_path: Path, call: Callable[..., object]) -> object:
    config = load_config(config_path)

    async def session() -> object:
        store = await open_store(config.storage.url)
        try:
            return await call(store, config)  # type: ignore[misc]
        finally:
            await store.close()

    return asyncio.run(session())


def acme_certificate(config_path: Path, name: str = "www.bluerobin.local", *,
                     sign: bool = True, validity: timedelta = timedelta(days=7)
                     ) -> CertificateRecord:
    """A certificate of ACCOUNT's order, reserved and (``sign``) signed, as finalize
    makes one."""

    async def make(store: object, config: Config) -> CertificateRecord:
        now = datetime.now(UTC)
        issuer = Issuer.load(config.ca.intermediate_cert, config.ca.intermediate_key,
                             config.ca.chain,
                             intermediate_passphrase(config.ca.intermediate_key_passphrase_file),
                             now, pkcs11_module=config.ca.pkcs11_module)
        if sign:
            await with_accounts(store)  # type: ignore[arg-type]
            authz = make_authorization("az-1", name)
            await store.create_order(make_order("order-1", [authz]), [authz])  # type: ignore[attr-defined]
        request = LeafRequest(
            public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
            dns_names=(name,), ip_addresses=(), not_before=now, not_after=now + validity,
            extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,))
        record, request = issuance.reservation(issuer, request, now, profile="server")
        if sign:
            record = replace(record, account_id=ACCOUNT, order_id="order-1")
        await store.reserve_serial(record)  # type: ignore[attr-defined]
        if not sign:
            return record
        der = issuer.issue(request).public_bytes(Encoding.DER)
        return await store.store_certificate(record.serial, der)  # type: ignore[attr-defined,no-any-return]

    return in_store(config_path, make)  # type: ignore[return-value]


def record_of(config_path: Path, serial: str) -> CertificateRecord:
    return in_store(config_path,  # type: ignore[return-value]
                    lambda store, _: store.get_certificate(serial_from_text(serial)))


# --- the serial, as it is pasted ---------------------------------------------------------

@pytest.mark.parametrize("text", ["1a2b3c", "1A2B3C", "0x1a2b3c", "0X1A2B3C", "1a:2b:3c",
                                  "00:1A:2B:3C", " 001a2b3c\n"])
def test_a_serial_is_read_as_certs_list_and_openssl_print_it(text: str) -> None:
    assert serial_from_text(text) == "1a2b3c"


@pytest.mark.parametrize("text", ["", "0x", "xyz", "1a-2b", "12 34", "::"])
def test_a_serial_that_is_no_hex_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a serial number"):
        serial_from_text(text)


# --- revoke ------------------------------------------------------------------------------

def test_the_operator_revokes_a_sign_csr_certificate(run: Run, ca: Path,
                                                     make_csr: CsrMaker) -> None:
    """A sign-csr certificate has no account: over ACME only its key could revoke it
    (RFC 8555 7.6); the operator can, with an RFC 5280 5.3.1 reason by name."""
    serial = sign_csr(run, ca, make_csr, "db.bluerobin.local")
    openssl_text = ":".join(serial.zfill(len(serial) + len(serial) % 2)[i:i + 2]
                            for i in range(0, len(serial) + len(serial) % 2, 2))
    code, out, err = run("--config", ca, "certs", "revoke", openssl_text,
                         "--reason", "keyCompromise")
    canonical = serial_from_text(serial)
    assert code == 0 and err == (  # the audit line: what, who, on which CA
        f"acme-ca: audit: revoked the certificate {canonical} (db.bluerobin.local), reason "
        f"keyCompromise; by {getpass.getuser()}; config {ca}, data dir "
        f"{load_config(ca).server.data_dir}\n")
    assert f"Revoked the certificate {canonical} (db.bluerobin.local)" in out
    assert "keyCompromise" in out and "CRL within seconds" in out
    record = record_of(ca, serial)
    assert record.status is CertificateStatus.REVOKED and record.account_id is None
    assert record.revocation_reason == 1 and record.revoked_at is not None
    crl_url = load_config(ca).revocation.base_url + f"/crl/{record.issuer[:16]}.crl"
    assert crl_url in out

    code, _, err = run("--config", ca, "certs", "revoke", serial)
    assert_one_line_error(code, err, f"the certificate {canonical} is already revoked")
    assert "keyCompromise" in err
    assert record_of(ca, serial).revocation_reason == 1  # the first reason stands


@pytest.mark.parametrize(("place", "said"), [
    ("tls/server.crt", "server's own TLS certificate"),
    ("ocsp/0123456789abcdef.crt", "server's own OCSP responder certificate")])
def test_revoking_the_servers_own_certificate_says_the_server_replaces_it(
        run: Run, sqlite_ca: Path, make_csr: CsrMaker, place: str, said: str) -> None:
    """RFC 5280 5: the server stops presenting a certificate of its own once revoked
    (authority/server_tls.py, ocsp_responders.py); `revoke` tells the operator so."""
    other = sign_csr(run, sqlite_ca, make_csr, "other.bluerobin.local")
    serial = sign_csr(run, sqlite_ca, make_csr, "ca.bluerobin.local")
    pem = files.pem(x509.load_der_x509_certificate(record_of(sqlite_ca, serial).der or b""))
    path = load_config(sqlite_ca).server.data_dir / place
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem)
    code, out, _ = run("--config", sqlite_ca, "certs", "revoke", other)
    assert code == 0 and "server's own" not in out
    code, out, _ = run("--config", sqlite_ca, "certs", "revoke", serial)
    assert code == 0 and said in out and "running server replaces it" in out


def test_the_operator_revokes_an_acme_certificate_by_default_unspecified(
        run: Run, ca: Path) -> None:
    record = acme_certificate(ca)
    code, out, err = run("--config", ca, "certs", "revoke", "0x" + record.serial.upper())
    assert code == 0, err
    assert "reason unspecified" in out
    revoked = record_of(ca, record.serial)
    assert (revoked.status, revoked.revocation_reason, revoked.account_id) == (
        CertificateStatus.REVOKED, 0, ACCOUNT)


@pytest.mark.parametrize(("name", "code"), [
    ("unspecified", 0), ("keyCompromise", 1), ("affiliationChanged", 3), ("superseded", 4),
    ("cessationOfOperation", 5), ("privilegeWithdrawn", 9), ("KEYCOMPROMISE", 1)])
def test_every_reason_an_operator_may_give(run: Run, sqlite_ca: Path, make_csr: CsrMaker,
                                           name: str, code: int) -> None:
    """RFC 5280 5.3.1 names; privilegeWithdrawn is the CA's finding, for the operator."""
    serial = sign_csr(run, sqlite_ca, make_csr, "db.bluerobin.local")
    assert run("--config", sqlite_ca, "certs", "revoke", serial, "--reason", name)[0] == 0
    assert record_of(sqlite_ca, serial).revocation_reason == code


@pytest.mark.parametrize("reason", ["cACompromise", "certificateHold", "removeFromCRL",
                                    "aACompromise", "1", "compromised", ""])
def test_a_reason_not_allowed_lists_the_allowed_ones(run: Run, sqlite_ca: Path,
                                                     make_csr: CsrMaker, reason: str) -> None:
    serial = sign_csr(run, sqlite_ca, make_csr, "db.bluerobin.local")
    code, _, err = run("--config", sqlite_ca, "certs", "revoke", serial, "--reason", reason)
    assert_one_line_error(code, err, "--reason: ")
    assert ("allowed: unspecified, keyCompromise, affiliationChanged, superseded, "
            "cessationOfOperation, privilegeWithdrawn") in err
    assert record_of(sqlite_ca, serial).status is CertificateStatus.ISSUED


def test_revoke_refuses_an_unknown_a_reserved_and_a_malformed_serial(run: Run,
                                                                    ca: Path) -> None:
    code, _, err = run("--config", ca, "certs", "revoke", "DEADBEEF")
    assert_one_line_error(code, err, "no certificate has the serial deadbeef")
    reserved = acme_certificate(ca, sign=False)
    code, _, err = run("--config", ca, "certs", "revoke", reserved.serial)
    assert_one_line_error(code, err, "reserved but never signed")
    assert record_of(ca, reserved.serial).status is CertificateStatus.RESERVED
    code, _, err = run("--config", ca, "certs", "revoke", "not-a-serial")
    assert_one_line_error(code, err, "serial: 'not-a-serial' is not a serial number")


# --- list --------------------------------------------------------------------------------

def test_list_shows_every_certificate_as_a_table_and_as_json(run: Run, ca: Path,
                                                             make_csr: CsrMaker) -> None:
    acme = acme_certificate(ca)
    manual = serial_from_text(sign_csr(run, ca, make_csr, "db.bluerobin.local"))
    run("--config", ca, "certs", "revoke", manual, "--reason", "superseded")

    code, out, err = run("--config", ca, "certs", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [c["serial"] for c in listed] == [acme.serial, manual]  # oldest first
    first, second = listed
    assert (first["state"], first["names"], first["account_id"], first["profile"]) == (
        "issued", ["www.bluerobin.local"], ACCOUNT, "server")
    assert (second["state"], second["account_id"], second["revocation_reason"]) == (
        "revoked", None, "superseded")
    assert datetime.fromisoformat(first["not_after"]) == acme.not_after

    code, out, err = run("--config", ca, "certs", "list")
    assert code == 0, err
    assert "\x1b[" not in out  # no colour when standard output is no terminal
    header, *rows = [line.split() for line in out.splitlines() if line.strip()
                     and not set(line.strip()) <= set("─ ")]
    assert header == ["SERIAL", "NAMES", "PROFILE", "NOT", "AFTER", "STATUS", "ACCOUNT"]
    assert rows[0][:3] == [acme.serial, "www.bluerobin.local", "server"]
    assert rows[0][-2:] == ["issued", ACCOUNT]
    assert rows[1][0] == manual and rows[1][-2:] == ["revoked", "-"]
    assert all(line == line.rstrip() for line in out.splitlines())

    code, out, _ = run("--config", ca, "certs", "list", "--revoked", "--json")
    assert [c["serial"] for c in json.loads(out)] == [manual]


def test_list_of_nothing(run: Run, sqlite_ca: Path) -> None:
    assert run("--config", sqlite_ca, "certs", "list")[:2] == (0, "No certificates.\n")
    assert run("--config", sqlite_ca, "certs", "list", "--json")[:2] == (0, "[]\n")


def test_list_pages_through_the_store_and_stops_at_the_limit(
        run: Run, sqlite_ca: Path, make_csr: CsrMaker, monkeypatch: pytest.MonkeyPatch) -> None:
    serials = [serial_from_text(sign_csr(run, sqlite_ca, make_csr, f"h{n}.bluerobin.local"))
               for n in range(5)]
    monkeypatch.setattr(store_session, "PAGE", 2)
    _, out, _ = run("--config", sqlite_ca, "certs", "list", "--json")
    assert [c["serial"] for c in json.loads(out)] == serials
    _, out, _ = run("--config", sqlite_ca, "certs", "list", "--json", "--limit", "3")
    assert [c["serial"] for c in json.loads(out)] == serials[:3]


def test_list_expiring_within_shows_unexpired_signed_certificates_only(
        run: Run, ca: Path, make_csr: CsrMaker) -> None:
    soon = acme_certificate(ca, "soon.bluerobin.local", validity=timedelta(hours=20))
    later = serial_from_text(sign_csr(run, ca, make_csr, "later.bluerobin.local"))  # 7d
    code, out, err = run("--config", ca, "certs", "list", "--expiring-within", "1d", "--json")
    assert code == 0, err
    assert [c["serial"] for c in json.loads(out)] == [soon.serial]
    _, out, _ = run("--config", ca, "certs", "list", "--expiring-within", "8d", "--json")
    assert [c["serial"] for c in json.loads(out)] == [soon.serial, later]
    run("--config", ca, "certs", "revoke", soon.serial)
    _, out, _ = run("--config", ca, "certs", "list", "--expiring-within", "8d", "--revoked",
                    "--json")
    assert [c["serial"] for c in json.loads(out)] == [soon.serial]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--expiring-within", "7x"], "--expiring-within: "),
    (["--expiring-within", "soon"], "--expiring-within: "),
    (["--limit", "0"], "--limit: 0 is not a positive number"),
])
def test_list_refuses_a_wrong_duration_or_limit(run: Run, sqlite_ca: Path, args: list[str],
                                                fragment: str) -> None:
    code, out, err = run("--config", sqlite_ca, "certs", "list", *args)
    assert_one_line_error(code, err, fragment)
    assert out == ""


# --- show --------------------------------------------------------------------------------

def test_show_prints_the_record_and_what_the_certificate_says(run: Run, ca: Path) -> None:
    record = acme_certificate(ca, "api.bluerobin.local")
    code, out, err = run("--config", ca, "certs", "show", record.serial.upper(), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["serial"] == record.serial and shown["state"] == "issued"
    assert shown["subject_alternative_names"] == ["api.bluerobin.local"]
    assert shown["key_type"] == "ECDSA P-256"
    assert "Intermediate" in shown["issuer"] and shown["issuer_fingerprint"] == record.issuer
    assert (shown["account_id"], shown["order_id"]) == (ACCOUNT, "order-1")
    assert shown["renew_early"] is False and shown["renew_early_at"] is None
    # RFC 9773 4.1: base64url(AKI keyIdentifier) "." base64url(the serial's DER content
    # octets), built here from the certificate; the window (4.2) around two thirds
    certificate = x509.load_der_x509_certificate(record.der or b"")
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    serial = certificate.serial_number
    octets = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    assert shown["ari_cert_id"] == (f"{b64url_encode(aki.value.key_identifier or b'')}."
                                    f"{b64url_encode(octets)}")
    start, end = (datetime.fromisoformat(shown[f"renewal_window_{e}"])
                  for e in ("start", "end"))
    two_thirds = record.not_before + (record.not_after - record.not_before) * 2 / 3
    assert start < two_thirds < end and end < record.not_after
    assert shown["replaced_by"] is None and shown["replaced_by_certificate"] is None
    assert shown["revoked_at"] is None and shown["revocation_reason"] is None

    code, out, _ = run("--config", ca, "certs", "show", record.serial)
    assert code == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert lines["serial"] == record.serial and lines["state"] == "issued"
    assert (lines["subject alternative names"], lines["key type"]) == (
        "api.bluerobin.local", "ECDSA P-256")
    assert (lines["renew early"], lines["revoked at"]) == ("no", "-")

    code, out, _ = run("--config", ca, "certs", "show", record.serial, "--pem")
    assert code == 0
    certificate = x509.load_pem_x509_certificate(out.encode())
    assert certificate.public_bytes(Encoding.DER) == record.der
    assert files.pem(certificate).decode() == out


def test_show_a_reserved_serial_and_refusals(run: Run, sqlite_ca: Path) -> None:
    """`show --json` has the same keys for every record (a script reads one shape):
    null for what only a signed certificate has."""
    reserved = acme_certificate(sqlite_ca, sign=False)
    signed = acme_certificate(sqlite_ca, "signed.bluerobin.local")
    code, out, _ = run("--config", sqlite_ca, "certs", "show", reserved.serial, "--json")
    assert code == 0
    shown = json.loads(out)
    _, out, _ = run("--config", sqlite_ca, "certs", "show", signed.serial, "--json")
    assert list(shown) == list(json.loads(out))
    assert shown["state"] == "reserved" and shown["subject"] is None
    assert shown["ari_cert_id"] is None and shown["renewal_window_start"] is None
    assert shown["subject_alternative_names"] is None and shown["renew_early"] is False
    code, _, err = run("--config", sqlite_ca, "certs", "show", reserved.serial, "--pem")
    assert_one_line_error(code, err, "reserved but never signed")
    code, _, err = run("--config", sqlite_ca, "certs", "show", "abc123")
    assert_one_line_error(code, err, "no certificate has the serial abc123")
    code, _, err = run("--config", sqlite_ca, "certs", "show", "g1")
    assert_one_line_error(code, err, "is not a serial number")


# --- renew-early -------------------------------------------------------------------------

def test_renew_early_marks_one_certificate_once(run: Run, ca: Path, make_csr: CsrMaker) -> None:
    """RFC 9773 4.2: a marked certificate's window is in the past, so a client renews."""
    serial = sign_csr(run, ca, make_csr, "db.bluerobin.local")
    code, out, err = run("--config", ca, "certs", "renew-early", serial)
    assert code == 0, err
    assert "Marked 1 certificate" in out and "at their next check" in out
    marked = record_of(ca, serial).renew_early_at
    assert marked is not None
    code, out, _ = run("--config", ca, "certs", "renew-early", serial)
    assert code == 0 and "already marked" in out and "0 marked" in out
    assert record_of(ca, serial).renew_early_at == marked  # the earlier mark stands
    _, out, _ = run("--config", ca, "certs", "show", serial, "--json")
    shown = json.loads(out)
    assert shown["renew_early"] is True
    assert datetime.fromisoformat(shown["renew_early_at"]) == marked
    # RFC 9773 4.2: the window is in the past now: a client renews at its next look
    assert datetime.fromisoformat(shown["renewal_window_end"]) <= marked + timedelta(
        seconds=1)


def test_renew_early_issued_before_marks_the_older_ones(run: Run, ca: Path,
                                                        make_csr: CsrMaker) -> None:
    older = [sign_csr(run, ca, make_csr, f"h{n}.bluerobin.local") for n in range(2)]
    cut = datetime.now(UTC)
    newer = sign_csr(run, ca, make_csr, "new.bluerobin.local")
    code, out, err = run("--config", ca, "certs", "renew-early", "--issued-before",
                         cut.isoformat().replace("+00:00", "Z"))
    assert code == 0, err
    assert "Marked 2 unexpired certificates issued before" in out
    assert all(record_of(ca, s).renew_early_at is not None for s in older)
    assert record_of(ca, newer).renew_early_at is None
    code, out, _ = run("--config", ca, "certs", "renew-early", "--issued-before",
                       cut.date().isoformat())  # midnight: none issued before
    assert code == 0 and "left to mark: 0 already marked" in out and "Marked" not in out


def test_renew_early_issued_before_dry_run_counts_and_a_rerun_says_already_marked(
        run: Run, sqlite_ca: Path, make_csr: CsrMaker) -> None:
    """RFC 9773 4.2: a mark moves the suggested window into the past for good; the
    operator sees how many a criterion takes before marking, and a second run says
    they are marked already (not "Marked 0")."""
    serials = [sign_csr(run, sqlite_ca, make_csr, f"h{n}.bluerobin.local") for n in range(3)]
    cut = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    args = ("--config", sqlite_ca, "certs", "renew-early", "--issued-before", cut)
    code, out, err = run(*args, "--dry-run")
    assert code == 0, err
    assert "Would mark 3 unexpired certificates" in out and "(0 already marked)" in out
    assert all(record_of(sqlite_ca, s).renew_early_at is None for s in serials)
    code, out, _ = run(*args)
    assert code == 0 and "Marked 3 unexpired certificates" in out
    code, out, _ = run(*args)
    assert code == 0 and "left to mark: 3 already marked" in out and "Marked 0" not in out
    code, out, _ = run(*args, "--dry-run")
    assert "Would mark 0 unexpired certificates" in out and "(3 already marked)" in out


@pytest.mark.parametrize(("args", "fragment"), [
    ([], "give either a SERIAL or --issued-before DATE"),
    (["abc", "--issued-before", "2026-12-01"], "give either a SERIAL or --issued-before"),
    (["--issued-before", "yesterday"], "--issued-before: 'yesterday' is not an RFC 3339"),
    (["--issued-before", "2026-12-01T10:00:00"], "is not an RFC 3339"),  # no offset
    (["--issued-before", "2026-13-01"], "is not an RFC 3339"),
    (["--issued-before", "20261201"], "is not an RFC 3339"),
    (["beef"], "no certificate has the serial beef"),
    (["0xq"], "is not a serial number"),
    (["--issued-before", "2999-01-01"], "2999-01-01 00:00:00 UTC is in the future"),
    (["beef", "--dry-run"], "--dry-run goes with --issued-before"),
])
def test_renew_early_refuses(run: Run, sqlite_ca: Path, args: list[str], fragment: str) -> None:
    code, out, err = run("--config", sqlite_ca, "certs", "renew-early", *args)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_renew_early_refuses_a_reserved_serial(run: Run, sqlite_ca: Path) -> None:
    reserved = acme_certificate(sqlite_ca, sign=False)
    code, _, err = run("--config", sqlite_ca, "certs", "renew-early", reserved.serial)
    assert_one_line_error(code, err, "reserved but never signed")


@pytest.mark.parametrize("text", ["2026-12-01", "2026-12-01T00:00:00Z",
                                  "2026-12-01t01:00:00+01:00", "2026-12-01 00:00:00.000Z"])
def test_an_rfc_3339_date_or_date_time_is_read_in_utc(text: str) -> None:
    assert certs_args.parse_moment(text) == datetime(2026, 12, 1, tzinfo=UTC)
