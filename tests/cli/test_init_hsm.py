"""`acme-ca init` with the intermediate key on a PKCS#11 token (SoftHSM2, a token of the
test's own): the key is generated there and never leaves it (PKCS#11 CKA_SENSITIVE,
CKA_EXTRACTABLE false), the offline root signs its certificate, and no file in the data
directory holds it. The token is named by an RFC 7512 URI (section 3's examples: token
and object in the path, pin-source in the query)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.cli.ca_init import bootstrap
from acme_ca.cli.main import main
from acme_ca.config import load_config
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.hierarchy import fingerprint
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, PublicKey, same_key
from acme_ca.pki.profiles import build_intermediate, build_root, ca_name
from acme_ca.pki.token import generate_token_key
from acme_ca.pki.token_session import close_modules
from tests.cli.conftest import FAST, ROOT_PASS, Run, assert_one_line_error, create_database, secret
from tests.cli.hsm import (
    init_on_token,
    openssl_verify,
    pem_of,
    private_key_files,
    private_keys,
    token_config,
)
from tests.conftest import ROOT_PASSPHRASE
from tests.required import require_program
from tests.softhsm import SoftHsm


def test_init_generates_the_intermediate_key_on_the_token(
    run: Run, tmp_path: Path, softhsm: SoftHsm
) -> None:
    """With the flags (nothing in the configuration): the key is on the token, not
    extractable (RFC 7512 names it; PKCS#11 keeps it), the chain verifies with openssl,
    and the summary names the URI (never a PIN) and the [ca] lines `serve` needs."""
    require_program("openssl")
    data = tmp_path / "acme-ca-data"
    uri = softhsm.uri()
    code, out, err = run("init", "--passphrase-file", secret(tmp_path, ROOT_PASS), *FAST,
                         "--intermediate-key-uri", uri, "--pkcs11-module", softhsm.module)
    assert (code, err) == (0, ""), err
    assert not (data / "ca" / "intermediate-ca.key").exists()
    assert f"intermediate key:     {uri} (on the token" in out
    assert softhsm.pin not in out.replace(str(softhsm.pin_file), "")
    assert f'intermediate_key = "{uri}"' in out and f'pkcs11_module = "{softhsm.module}"' in out

    (key,) = private_keys(softhsm)
    assert key["label"] == "intermediate"
    assert (key["extractable"], key["sensitive"], key["never_extractable"]) == (False, True, True)
    inter, root = files.load_certificates(data / "ca" / "ca-chain.pem")
    assert openssl_verify(data / "ca" / "root-ca.crt", data / "ca" / "root-ca.crt",
                          data / "ca" / "intermediate-ca.crt").endswith(": OK\n")
    # The key on the token is the certificate's: it signs, and a leaf verifies to the root.
    issuer = Issuer.load(data / "ca" / "intermediate-ca.crt", Pkcs11Uri.parse(uri),
                         data / "ca" / "ca-chain.pem", None, inter.not_valid_before_utc,
                         pkcs11_module=softhsm.module)
    assert same_key(issuer.signer.public_key, inter.public_key())  # type: ignore[arg-type]
    assert not same_key(issuer.signer.public_key, root.public_key())  # type: ignore[arg-type]
    assert private_key_files(data, (None, ROOT_PASS.encode())) == [
        data / "offline" / "root-ca.key"]


def test_init_takes_the_token_from_the_configuration(
    run: Run, tmp_path: Path, softhsm: SoftHsm,
    make_csr: Callable[..., x509.CertificateSigningRequest],
) -> None:
    """[ca] intermediate_key = "pkcs11:..." and [ca] pkcs11_module: `init` uses them, says
    nothing about the configuration, and `sign-csr` and `admin-cert` sign with the
    token key."""
    require_program("openssl")
    config = token_config(tmp_path, softhsm)
    code, out, err = run("--config", config, "init", "--passphrase-file",
                         secret(tmp_path, ROOT_PASS), *FAST, "--intermediate-key-type", "ec-p384")
    assert (code, err) == (0, ""), err
    assert "Set in the configuration" not in out
    data = tmp_path / "acme-ca-data"
    inter = files.load_certificate(data / "ca" / "intermediate-ca.crt")
    public = inter.public_key()
    assert getattr(public, "curve", None) is not None and public.curve.name == "secp384r1"  # type: ignore[union-attr]
    create_database(load_config(config))
    csr = tmp_path / "host.csr"
    csr.write_bytes(make_csr("host.bluerobin.local").public_bytes(Encoding.PEM))
    leaf = tmp_path / "host.crt"
    code, _, err = run("--config", config, "sign-csr", csr, "--out", leaf)
    assert code == 0, err
    assert openssl_verify(data / "ca" / "root-ca.crt", data / "ca" / "intermediate-ca.crt",
                          leaf).endswith(": OK\n")
    code, _, err = run("--config", config, "admin-cert", "--name", "alice", "--out",
                       tmp_path / "alice.pem", "--pem")
    assert code == 0, err
    admin = files.load_certificates(tmp_path / "alice.pem")[0]
    assert openssl_verify(data / "ca" / "root-ca.crt", data / "ca" / "intermediate-ca.crt",
                          pem_of(tmp_path / "alice.crt", admin)).endswith(": OK\n")
    assert private_key_files(data, (None, ROOT_PASS.encode())) == [
        data / "offline" / "root-ca.key"]


def test_init_refuses_an_existing_intermediate_and_makes_no_key(
    run: Run, tmp_path: Path, softhsm: SoftHsm
) -> None:
    data = init_on_token(run, tmp_path, softhsm)
    before = (data / "ca" / "intermediate-ca.crt").read_bytes()
    (data / "offline" / "root-ca.key").unlink()  # moved offline: the intermediate still counts
    code, _, err = run("--config", tmp_path / "acme-ca.toml", "init", "--passphrase-file",
                       tmp_path / "root.pass", *FAST)
    assert_one_line_error(code, err, "already exists; refusing to overwrite a CA")
    assert (data / "ca" / "intermediate-ca.crt").read_bytes() == before
    assert len(private_keys(softhsm)) == 1


@pytest.mark.parametrize(
    ("change", "fragment", "status"),
    [
        ("pin", "wrong PIN", 77),  # errors.PinRefused: docs/operations.md
        ("pin file", "cannot read the PIN file", 1),
        ("token", "no token matches", 1),
        ("module", "no-such-module.so does not exist", 1),
    ],
)
def test_init_with_a_token_it_cannot_use_is_one_line_and_writes_nothing(
    run: Run, tmp_path: Path, softhsm: SoftHsm, change: str, fragment: str, status: int
) -> None:
    """Said before the root key is made: nothing is written, no key is left. A refused
    PIN exits 77 (every command: the token is the same)."""
    wrong = secret(tmp_path, "4321", "wrong.pin")
    uri, module = {
        "pin": (f"pkcs11:token={softhsm.label};object=intermediate?pin-source=file:{wrong}",
                softhsm.module),
        "pin file": (f"pkcs11:token={softhsm.label};object=intermediate"
                     f"?pin-source=file:{tmp_path / 'missing.pin'}", softhsm.module),
        "token": ("pkcs11:token=no-such-token;object=intermediate"
                  f"?pin-source=file:{softhsm.pin_file}", softhsm.module),
        "module": (softhsm.uri(), tmp_path / "no-such-module.so"),
    }[change]
    code, _, err = run("init", "--passphrase-file", secret(tmp_path, ROOT_PASS), *FAST,
                       "--intermediate-key-uri", uri, "--pkcs11-module", module)
    assert_one_line_error(code, err, fragment, status)
    assert str(softhsm.pin) not in err.replace(str(softhsm.pin_file), "")
    assert not (tmp_path / "acme-ca-data").exists()
    assert private_keys(softhsm) == []


@pytest.mark.parametrize("command", ["intermediate renew", "sign-csr", "admin-cert"])
def test_every_command_that_opens_the_token_exits_77_on_a_refused_pin(
    run: Run, tmp_path: Path, softhsm: SoftHsm, command: str
) -> None:
    """errors.PinRefused ends renew, sign-csr and admin-cert as it ends init and serve:
    one line, exit status 77 (docs/acme-ca.service does not restart it), and nothing
    written."""
    data = init_on_token(run, tmp_path, softhsm)
    close_modules()  # a login is per process: this one must log in again, with the PIN below
    config = tmp_path / "acme-ca.toml"
    wrong = secret(tmp_path, "4321", "wrong.pin")
    config.write_text(config.read_text().replace(
        f"pin-source=file:{softhsm.pin_file}", f"pin-source=file:{wrong}"))
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([])).add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("web.bluerobin.local")]), critical=False).sign(
        ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    (tmp_path / "web.csr").write_bytes(csr.public_bytes(Encoding.PEM))
    argv = {
        "intermediate renew": ["intermediate", "renew", "--passphrase-file",
                               secret(tmp_path, ROOT_PASS)],
        "sign-csr": ["sign-csr", tmp_path / "web.csr"],
        "admin-cert": ["admin-cert", "--name", "ops", "--out", tmp_path / "ops.p12", "--pem"],
    }[command]
    before = sorted(p for p in data.rglob("*") if p.is_file())
    code, out, err = run("--config", config, *argv)
    assert_one_line_error(code, err, "wrong PIN for the token", 77)
    assert sorted(p for p in data.rglob("*") if p.is_file()) == before
    assert not (tmp_path / "ops.p12").exists() and "CERTIFICATE" not in out


def test_a_bad_uri_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["init", "--intermediate-key-uri", "pkcs11:object=a;object=b"])
    assert caught.value.code == 2
    assert "--intermediate-key-uri: not a PKCS#11 URI" in capsys.readouterr().err


def made_elsewhere(tmp_path: Path, token: SoftHsm) -> tuple[Path, Path, PublicKey]:
    """A root (key in memory) and an intermediate whose key was generated on the token
    beforehand (as a vendor's tool would): the two certificate files, and that key."""
    public, _ = generate_token_key(Pkcs11Uri.parse(token.uri()), token.module, KeyType.EC_P256)
    root_key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.now(UTC).replace(microsecond=0)
    root = build_root(root_key, ca_name("Elsewhere Root", None, None), start)
    inter = build_intermediate(root_cert=root, root_key=root_key, public_key=public,
                               subject=ca_name("Elsewhere Intermediate", None, None),
                               not_before=start, validity=root.not_valid_after_utc - start)
    source = tmp_path / "elsewhere"
    source.mkdir()
    (source / "root.crt").write_bytes(files.pem(root))
    (source / "inter.crt").write_bytes(files.pem(inter))
    return source / "root.crt", source / "inter.crt", public


def test_init_import_adopts_an_intermediate_whose_key_is_on_the_token(
    run: Run, tmp_path: Path, softhsm: SoftHsm
) -> None:
    root_cert, inter_cert, public = made_elsewhere(tmp_path, softhsm)
    config = token_config(tmp_path, softhsm)
    code, out, err = run("--config", config, "init", "--import", "--root-cert", root_cert,
                         "--intermediate-cert", inter_cert)
    assert (code, err) == (0, ""), err
    data = tmp_path / "acme-ca-data"
    assert "on the token" in out and not (data / "ca" / "intermediate-ca.key").exists()
    inter = files.load_certificate(data / "ca" / "intermediate-ca.crt")
    assert fingerprint(inter) == fingerprint(files.load_certificate(inter_cert))
    assert same_key(inter.public_key(), public)  # type: ignore[arg-type]
    assert private_key_files(data, (None,)) == []
    assert len(private_keys(softhsm)) == 1  # adopted, not made


def test_init_import_refuses_a_token_key_that_is_not_the_certificates(
    run: Run, tmp_path: Path, softhsm: SoftHsm
) -> None:
    root_cert, inter_cert, _ = made_elsewhere(tmp_path, softhsm)
    other = softhsm.uri("other")
    generate_token_key(Pkcs11Uri.parse(other), softhsm.module, KeyType.EC_P256)
    code, _, err = run("init", "--import", "--root-cert", root_cert, "--intermediate-cert",
                       inter_cert, "--intermediate-key-uri", other, "--pkcs11-module",
                       softhsm.module)
    assert_one_line_error(code, err, "other")
    assert not (tmp_path / "acme-ca-data").exists()


def test_init_import_refuses_a_key_file_and_a_uri_together(
    run: Run, tmp_path: Path, softhsm: SoftHsm
) -> None:
    root_cert, inter_cert, _ = made_elsewhere(tmp_path, softhsm)
    code, _, err = run("init", "--import", "--root-cert", root_cert, "--intermediate-cert",
                       inter_cert, "--intermediate-key", tmp_path / "some.key",
                       "--intermediate-key-uri", softhsm.uri())
    assert_one_line_error(code, err, "give one, not both")


def test_serve_bootstraps_a_ca_on_the_configured_token(tmp_path: Path, softhsm: SoftHsm,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """The first start with no CA and [ca] intermediate_key a URI: the key is made on
    the token, and no intermediate key file is written."""
    monkeypatch.setenv("ACME_CA_ROOT_PASSPHRASE", ROOT_PASSPHRASE.decode())
    config = load_config(token_config(tmp_path, softhsm))
    bootstrap(config)
    out = capsys.readouterr().out
    assert "No CA found: created one." in out and "on the token" in out
    data = tmp_path / "acme-ca-data"
    assert private_key_files(data, (None, ROOT_PASSPHRASE)) == [data / "offline" / "root-ca.key"]
    (key,) = private_keys(softhsm)
    assert key["extractable"] is False
