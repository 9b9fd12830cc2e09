"""`acme-ca intermediate renew` with the key on a PKCS#11 token (SoftHSM2): the new key
is generated on the token; an old token key stays there, named in the archive by its
RFC 7512 URI pinned to its CKA_ID, signs its intermediate's CRLs (RFC 5280 5.1, checked
with openssl) and is destroyed on the token once nothing it signed can be valid."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.authority.archived_keys import SWEEP_EVERY, ArchivedKeys
from acme_ca.cli.ca_renew import archived_key_retention
from acme_ca.clock import FakeClock
from acme_ca.config import Config, load_config
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.archive import load_archive
from acme_ca.pki.crl import build_crl
from acme_ca.pki.issuer import Issuer
from acme_ca.store import open_store
from tests.cli.conftest import ROOT_PASS, Run, assert_one_line_error, create_database, secret
from tests.cli.hsm import (
    init_on_token,
    openssl_verify,
    pem_of,
    private_key_files,
    private_keys,
    token_objects,
)
from tests.required import require_program
from tests.softhsm import SoftHsm

CsrMaker = Callable[..., x509.CertificateSigningRequest]


def sign_leaf(run: Run, config: Path, tmp_path: Path, make_csr: CsrMaker) -> None:
    """`sign-csr`: a leaf of the current intermediate, recorded in the store."""
    csr = tmp_path / "host.csr"
    csr.write_bytes(make_csr("host.bluerobin.local").public_bytes(Encoding.PEM))
    code, _, err = run("--config", config, "sign-csr", csr, "--validity", "1d",
                       "--out", tmp_path / "host.crt")
    assert code == 0, err


def load_issuer(config: Config, now: datetime) -> Issuer:
    """The intermediate as `serve` loads it, with the archived keys that sign CRLs."""
    ca = config.ca
    return Issuer.load(ca.intermediate_cert, ca.intermediate_key, ca.chain, None, now,
                       archived_keys=True, pkcs11_module=ca.pkcs11_module)


def crl_verifies(crl: bytes, issuer: x509.Certificate, tmp_path: Path) -> bool:
    """Whether ``openssl crl`` verifies the CRL's signature with ``issuer``."""
    der = tmp_path / "archived.crl"
    der.write_bytes(crl)
    checked = subprocess.run(
        [require_program("openssl"), "crl", "-inform", "DER", "-in", str(der), "-noout",
         "-CAfile", str(pem_of(tmp_path / "issuer.pem", issuer))],
        capture_output=True, text=True, timeout=60)
    return checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr


def test_renew_on_the_token_then_the_old_key_signs_crls_then_goes(
    run: Run, tmp_path: Path, softhsm: SoftHsm, make_csr: CsrMaker
) -> None:
    """token -> token, as configured: one key more on the token, the archive names the
    old one (.key-uri, no .key); its CRL verifies with openssl against the old
    intermediate (not the new one); past its deadline `serve`'s sweep destroys the pair
    on the token and keeps the certificate."""
    data = init_on_token(run, tmp_path, softhsm)
    config_path = tmp_path / "acme-ca.toml"
    config = load_config(config_path)
    create_database(config)
    sign_leaf(run, config_path, tmp_path, make_csr)
    old = files.load_certificate(data / "ca" / "intermediate-ca.crt")
    (old_key,) = private_keys(softhsm)

    code, out, err = run("--config", config_path, "intermediate", "renew",
                         "--passphrase-file", tmp_path / "root.pass")
    assert code == 0, err
    assert "its key on the token (the archive names it) will be destroyed" in out
    assert "send SIGHUP" in out and "Set in the configuration" not in out
    new = files.load_certificate(data / "ca" / "intermediate-ca.crt")
    assert new != old and new.subject == old.subject
    keys = private_keys(softhsm)
    assert len(keys) == 2 and {k["label"] for k in keys} == {"intermediate"}
    (archived,) = load_archive(data / "ca" / "archive")
    assert archived.on_token and not archived.key_path.exists()
    uri = Pkcs11Uri.parse(archived.key_uri_path.read_text().strip())
    assert uri.object_id is not None and uri.object_id.hex() == old_key["id"]
    assert private_key_files(data, (None, ROOT_PASS.encode())) == [
        data / "offline" / "root-ca.key"]

    now = datetime.now(UTC)
    issuer = load_issuer(config, now)
    (_, old_signer) = issuer.crl_signers()
    crl = build_crl(old_signer, number=1, this_update=now, next_update=now + timedelta(days=1),
                    entries=(), distribution_point="http://ca.bluerobin.local/crl")
    assert crl_verifies(crl, old, tmp_path)
    assert not crl_verifies(crl, new, tmp_path)

    asyncio.run(sweep_past_the_deadline(config, issuer, now))
    (left,) = private_keys(softhsm)
    assert left["id"] != old_key["id"]
    assert old_key["id"] not in [o["id"] for o in token_objects(softhsm)]  # the public half too
    assert not archived.key_uri_path.exists() and archived.cert_path.exists()
    assert load_issuer(config, now).signer.public_key == new.public_key()


async def sweep_past_the_deadline(config: Config, issuer: Issuer, now: datetime) -> None:
    """Two sweeps of `serve`'s archived keys, the sweep interval apart, after the
    deadline `renew` recorded and after the leaf the old intermediate signed expired."""
    store = await open_store(config.storage.url)
    try:
        clock = FakeClock(now + archived_key_retention(config) + timedelta(minutes=1))
        ca = config.ca
        keys = ArchivedKeys(config.ca.intermediate_cert.parent / "archive", store, clock,
                            lambda: issuer, archived_key_retention(config),
                            pkcs11_module=ca.pkcs11_module,
                            pin_from=ca.intermediate_key)  # type: ignore[arg-type]
        assert await keys.sweep() == []
        clock.advance(SWEEP_EVERY)
        assert len(await keys.sweep()) == 1
    finally:
        await store.close()


def test_an_archived_name_of_the_current_key_is_not_destroyed(
    run: Run, tmp_path: Path, softhsm: SoftHsm, make_csr: CsrMaker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A .key-uri pinned to the current key's id (edited by hand, or a restore gone
    wrong): the token says that key is not the archived certificate's, and it stays."""
    data = init_on_token(run, tmp_path, softhsm)
    config_path = tmp_path / "acme-ca.toml"
    config = load_config(config_path)
    create_database(config)
    sign_leaf(run, config_path, tmp_path, make_csr)
    code, _, err = run("--config", config_path, "intermediate", "renew",
                       "--passphrase-file", tmp_path / "root.pass")
    assert code == 0, err
    (archived,) = load_archive(data / "ca" / "archive")
    archived_id = Pkcs11Uri.parse(archived.key_uri_path.read_text().strip()).object_id
    assert archived_id is not None
    (current_id,) = [k["id"] for k in private_keys(softhsm) if k["id"] != archived_id.hex()]
    pointed = Pkcs11Uri.parse(softhsm.uri()).with_id(bytes.fromhex(str(current_id)))
    archived.key_uri_path.write_text(f"{pointed}\n")

    now = datetime.now(UTC)
    issuer = load_issuer(config, now)

    async def sweep() -> list[Path]:
        store = await open_store(config.storage.url)
        try:
            clock = FakeClock(now + archived_key_retention(config) + timedelta(minutes=1))
            keys = ArchivedKeys(data / "ca" / "archive", store, clock, lambda: issuer,
                                archived_key_retention(config),
                                pkcs11_module=softhsm.module)
            destroyed = await keys.sweep()
            clock.advance(SWEEP_EVERY)
            return destroyed + await keys.sweep()
        finally:
            await store.close()

    assert asyncio.run(sweep()) == []
    assert len(private_keys(softhsm)) == 2
    assert f"{archived.key_uri_path} is kept and left as it is" in caplog.text
    assert load_issuer(config, now).signer.public_key == issuer.signer.public_key


def test_renew_from_a_key_file_onto_the_token(
    run: Run, tmp_path: Path, softhsm: SoftHsm
) -> None:
    """file -> token with the flags: the old key file is archived as before; the live
    key file goes; the summary says what [ca] must say now."""
    code, _, err = run("init", "--passphrase-file", secret(tmp_path, ROOT_PASS),
                       "--key-type", "ec-p384", "--intermediate-key-type", "ec-p256")
    assert code == 0, err
    data = tmp_path / "acme-ca-data"
    old = files.load_certificate(data / "ca" / "intermediate-ca.crt")
    code, out, err = run("intermediate", "renew", "--passphrase-file", tmp_path / "root.pass",
                         "--intermediate-key-uri", softhsm.uri(),
                         "--pkcs11-module", softhsm.module)
    assert code == 0, err
    assert f'intermediate_key = "{softhsm.uri()}"' in out and "send SIGHUP" not in out
    assert not (data / "ca" / "intermediate-ca.key").exists()
    archived_key = data / "ca" / "archive" / f"intermediate-ca.{old.serial_number:x}.key"
    assert private_key_files(data, (None, ROOT_PASS.encode())) == [
        archived_key, data / "offline" / "root-ca.key"]
    (key,) = private_keys(softhsm)
    assert key["extractable"] is False
    config = load_config(None, {"server.data_dir": str(data), "ca.pkcs11_module":
                                str(softhsm.module), "ca.intermediate_key": softhsm.uri()})
    issuer = load_issuer(config, datetime.now(UTC))
    assert issuer.signer.public_key == files.load_certificate(
        data / "ca" / "intermediate-ca.crt").public_key()
    (_, archived_signer) = issuer.crl_signers()
    assert archived_signer.certificate == old  # the archived file key signs its CRLs


@pytest.mark.parametrize("where", ["configured", "flag"])
def test_renew_refuses_a_pin_it_cannot_read_before_the_root_key(
    run: Run, tmp_path: Path, softhsm: SoftHsm, where: str
) -> None:
    """One line naming the PIN file, even with a wrong root passphrase: the root key is
    not read; nothing changes, on disk or on the token."""
    data = init_on_token(run, tmp_path, softhsm)
    config_path = tmp_path / "acme-ca.toml"
    unreadable = f"pkcs11:token={softhsm.label};object=intermediate" \
                 f"?pin-source=file:{tmp_path / 'no.pin'}"
    if where == "configured":
        config_path.write_text(config_path.read_text().replace(softhsm.uri(), unreadable))
    flags = ["--intermediate-key-uri", unreadable] if where == "flag" else []
    before = (data / "ca" / "intermediate-ca.crt").read_bytes()
    code, _, err = run("--config", config_path, "intermediate", "renew", "--passphrase-file",
                       secret(tmp_path, "not the root passphrase", "wrong.pass"), *flags)
    assert_one_line_error(code, err, f"cannot read the PIN file {tmp_path / 'no.pin'}")
    assert (data / "ca" / "intermediate-ca.crt").read_bytes() == before
    assert len(private_keys(softhsm)) == 1
    assert not (data / "ca" / "archive").exists()


def key_type_of(public_key: object) -> str:
    """The `--intermediate-key-type` value naming ``public_key``'s type."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa{public_key.key_size}"
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    return {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}[public_key.curve.name]


@pytest.mark.parametrize(("first", "second"), [
    ("ec-p256", "rsa2048"), ("rsa2048", "ec-p384"), ("ec-p384", "ec-p256")])
def test_init_and_renew_make_each_key_type_on_the_token(
    run: Run, tmp_path: Path, softhsm: SoftHsm, make_csr: CsrMaker, first: str, second: str
) -> None:
    """Issue 14 item 3: `init --intermediate-key-uri` and `intermediate renew` have the
    token generate an ECDSA P-256, P-384 or RSA key, never extractable, each with
    `--intermediate-key-type` (renew's `--key-type` is the same option: init's
    `--key-type` is the root's, and an operator types the flag init taught him); each
    intermediate signs a leaf that openssl verifies up to the root."""
    data = init_on_token(run, tmp_path, softhsm, "--intermediate-key-type", first)
    config_path = tmp_path / "acme-ca.toml"
    create_database(load_config(config_path))
    ca = data / "ca"
    for key_type in (first, second):
        if key_type == second:
            code, _, err = run("--config", config_path, "intermediate", "renew",
                               "--passphrase-file", tmp_path / "root.pass",
                               "--intermediate-key-type", second)
            assert code == 0, err
        certificate = files.load_certificate(ca / "intermediate-ca.crt")
        assert key_type_of(certificate.public_key()) == key_type
        sign_leaf(run, config_path, tmp_path, make_csr)
        openssl_verify(ca / "root-ca.crt", ca / "intermediate-ca.crt", tmp_path / "host.crt")
    keys = private_keys(softhsm)
    assert len(keys) == 2, keys
    assert all(k["sensitive"] and not k["extractable"] and k["never_extractable"]
               for k in keys), keys
    assert private_key_files(data, (None, ROOT_PASS.encode())) == [
        data / "offline" / "root-ca.key"]
