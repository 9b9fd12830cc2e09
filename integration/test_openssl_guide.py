"""The hand-run openssl guide (shared/seed/000_...), then `acme-ca init --import` adopts it.

The openssl commands are the guide's, with only what makes them non-interactive
added (-passout/-passin, -batch). Most tests use 2048-bit keys for speed;
test_guide_exact_4096 runs the guide's 4096-bit commands as written.
"""

from __future__ import annotations

import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from integration.conftest import (
    Server,
    assert_user_error,
    https_get,
    require_program,
    run,
    run_cli,
)

pytestmark = pytest.mark.integration

ROOT_PASS = "root-pass-phrase"
INTER_PASS = "intermediate-pass-phrase"
ROOT_SUBJ = "/C=US/O=BlueRobin/CN=BlueRobin Root CA"
POSTGRES_SUBJ = "/C=US/O=BlueRobin/CN=postgres.bluerobin.local"

ROOT_CA_CONF = """\
[ ca ]
default_ca = CA_default

[ CA_default ]
dir               = .
database          = $dir/db/index.txt
serial            = $dir/db/serial
new_certs_dir     = $dir/db/newcerts
certificate       = $dir/root-ca.crt
private_key       = $dir/root-ca.key
default_md        = sha256
default_days      = 1825
policy            = policy_loose
unique_subject    = no

[ policy_loose ]
countryName             = optional
organizationName        = optional
commonName              = supplied

[ req ]
distinguished_name  = req_distinguished_name
default_md          = sha256

[ req_distinguished_name ]

[ v3_ca ]
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints       = critical, CA:true
keyUsage               = critical, digitalSignature, cRLSign, keyCertSign

[ v3_intermediate_ca ]
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints       = critical, CA:true, pathlen:0
keyUsage               = critical, digitalSignature, cRLSign, keyCertSign

[ usr_cert ]
basicConstraints       = CA:FALSE
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid,issuer
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
"""

# The guide's `openssl req -config intermediate-ca.conf -new` has no -subj: the name is here.
INTERMEDIATE_CA_CONF = """\
[ req ]
prompt              = no
distinguished_name  = req_distinguished_name
default_md          = sha256

[ req_distinguished_name ]
C  = US
O  = BlueRobin
CN = BlueRobin Intermediate CA
"""


CA_FILES = ("root-ca.crt", "root-ca.key", "root-ca.conf")


def write_configs(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "root-ca.conf").write_text(ROOT_CA_CONF)
    (workdir / "intermediate-ca.conf").write_text(INTERMEDIATE_CA_CONF)
    (workdir / "db" / "newcerts").mkdir(parents=True)
    (workdir / "db" / "index.txt").write_text("")
    (workdir / "db" / "serial").write_text("1000\n")


def sh(cmdline: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one `openssl ...` line as the guide writes it (no shell involved)."""
    argv = shlex.split(cmdline)
    assert argv[0] == "openssl"
    return run([require_program("openssl"), *argv[1:]], cwd=cwd)


def build_guide_pki(workdir: Path, *, bits: int = 2048, inter_pass: str | None = None) -> Path:
    """Sections 1 and 2 of the guide; only -passout/-passin/-batch are added."""
    write_configs(workdir)
    root_in = f"-passin pass:{ROOT_PASS}"
    inter_out = f"-aes256 -passout pass:{inter_pass}" if inter_pass else ""
    inter_in = f"-passin pass:{inter_pass}" if inter_pass else ""
    for line in (
        f"openssl genrsa -aes256 -passout pass:{ROOT_PASS} -out root-ca.key {bits}",
        f"openssl req -config root-ca.conf -key root-ca.key {root_in} "
        "-new -x509 -days 3650 -sha256 -extensions v3_ca "
        f"-out root-ca.crt -subj '{ROOT_SUBJ}'",
        f"openssl genrsa {inter_out} -out intermediate-ca.key {bits}",
        "openssl req -config intermediate-ca.conf -new -sha256 "
        f"-key intermediate-ca.key {inter_in} -out intermediate-ca.csr",
        f"openssl ca -batch -config root-ca.conf {root_in} -extensions v3_intermediate_ca "
        "-days 1825 -notext -md sha256 -in intermediate-ca.csr -out intermediate-ca.crt",
    ):
        sh(line, workdir)
    # cat intermediate-ca.crt root-ca.crt > ca-chain.pem
    chain = (workdir / "intermediate-ca.crt").read_bytes() + (workdir / "root-ca.crt").read_bytes()
    (workdir / "ca-chain.pem").write_bytes(chain)
    return workdir


def postgres_csr(workdir: Path) -> Path:
    """Section 3, steps 1 and 2: a CSR with only a subject, no SAN."""
    sh("openssl genrsa -out postgres.key 2048", workdir)
    sh(f"openssl req -new -key postgres.key -out postgres.csr -subj '{POSTGRES_SUBJ}'", workdir)
    return workdir / "postgres.csr"


IMPORT_FLAGS = ("--root-cert", "--intermediate-cert", "--intermediate-key")
GUIDE_FILES = ("root-ca.crt", "intermediate-ca.crt", "intermediate-ca.key")


def import_args(data_dir: Path, *files: Path) -> list[str]:
    """`init --import` of (root cert, intermediate cert, intermediate key)."""
    flags = (f"{flag}={path}" for flag, path in zip(IMPORT_FLAGS, files, strict=True))
    return ["--data-dir", str(data_dir), "init", "--import", *flags]


def import_pki(
    pki: Path, data_dir: Path, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    args = import_args(data_dir, *(pki / name for name in GUIDE_FILES))
    return run_cli(*args, *extra, cwd=data_dir.parent, check=check)


def load_certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@pytest.fixture(scope="module")
def guide_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_guide_pki(tmp_path_factory.mktemp("guide"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another run of the guide: same names, different keys."""
    return build_guide_pki(tmp_path_factory.mktemp("other"))


@pytest.fixture(scope="module")
def encrypted_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_guide_pki(tmp_path_factory.mktemp("encrypted"), inter_pass=INTER_PASS)


def check_adopted(pki: Path, data_dir: Path) -> None:
    ca = data_dir / "ca"
    for name in ("root-ca.crt", "intermediate-ca.crt", "intermediate-ca.key", "ca-chain.pem"):
        assert (ca / name).is_file(), name
    assert stat.S_IMODE((ca / "intermediate-ca.key").stat().st_mode) == 0o600
    assert load_certs(ca / "ca-chain.pem") == load_certs(pki / "ca-chain.pem")
    assert not (data_dir / "offline" / "root-ca.key").exists()  # the root key is never asked for


def sign_and_verify(pki: Path, data_dir: Path, env: dict[str, str] | None = None) -> None:
    """Section 3 with `acme-ca sign-csr`, then Section 4's `openssl verify`."""
    work = data_dir.parent / "leaf"
    work.mkdir()
    shutil.copy(pki / "ca-chain.pem", work / "ca-chain.pem")  # the guide's own chain
    postgres_csr(work)
    sign = ["--data-dir", str(data_dir), "sign-csr", "postgres.csr", "--out", "postgres.crt"]
    result = run_cli(*sign, cwd=work, env=env)
    assert "postgres.bluerobin.local" in result.stderr
    verify = sh("openssl verify -CAfile ca-chain.pem postgres.crt", work)
    assert verify.stdout.strip() == "postgres.crt: OK"
    leaf = x509.load_pem_x509_certificate((work / "postgres.crt").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["postgres.bluerobin.local"]
    text = sh("openssl x509 -in postgres.crt -noout -ext subjectAltName", work).stdout
    assert "DNS:postgres.bluerobin.local" in text


def test_guide_exact_4096(tmp_path: Path) -> None:
    pki = build_guide_pki(tmp_path / "pki", bits=4096)
    root = x509.load_pem_x509_certificate((pki / "root-ca.crt").read_bytes())
    assert root.public_key().key_size == 4096  # type: ignore[union-attr]
    inter = x509.load_pem_x509_certificate((pki / "intermediate-ca.crt").read_bytes())
    constraints = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    data_dir = tmp_path / "data"
    result = import_pki(pki, data_dir)
    assert "Imported" in result.stdout
    check_adopted(pki, data_dir)
    sign_and_verify(pki, data_dir)


def test_import_and_sign_postgres(guide_pki: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    import_pki(guide_pki, data_dir)
    check_adopted(guide_pki, data_dir)
    sign_and_verify(guide_pki, data_dir)


def test_import_refuses_to_overwrite(guide_pki: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    import_pki(guide_pki, data_dir)
    before = (data_dir / "ca" / "intermediate-ca.key").read_bytes()
    assert_user_error(import_pki(guide_pki, data_dir, check=False), "already exists")
    assert (data_dir / "ca" / "intermediate-ca.key").read_bytes() == before


def test_encrypted_intermediate_key(encrypted_pki: Path, tmp_path: Path) -> None:
    assert b"ENCRYPTED" in (encrypted_pki / "intermediate-ca.key").read_bytes()
    secret = tmp_path / "intermediate.pass"
    secret.write_text(INTER_PASS + "\n")
    data_dir = tmp_path / "data"
    result = import_pki(encrypted_pki, data_dir, "--passphrase-file", str(secret))
    check_adopted(encrypted_pki, data_dir)
    assert "encrypted" in result.stdout
    assert b"ENCRYPTED" in (data_dir / "ca" / "intermediate-ca.key").read_bytes()
    sign_and_verify(encrypted_pki, data_dir, env={"ACME_CA_INTERMEDIATE_PASSPHRASE": INTER_PASS})


def assert_import_refused(tmp_path: Path, needle: str, *files: Path, extra: str = "") -> None:
    """`init --import` of these files fails with one line, and writes nothing."""
    data_dir = tmp_path / "data"
    args = [*import_args(data_dir, *files), *extra.split()]
    assert_user_error(run_cli(*args, cwd=tmp_path, check=False), needle)
    assert not (data_dir / "ca" / "intermediate-ca.key").exists()


def test_encrypted_intermediate_key_wrong_passphrase(encrypted_pki: Path, tmp_path: Path) -> None:
    (tmp_path / "wrong.pass").write_text("not-the-passphrase\n")
    files = (encrypted_pki / name for name in GUIDE_FILES)
    assert_import_refused(
        tmp_path, "wrong passphrase", *files, extra="--passphrase-file wrong.pass"
    )


def test_intermediate_from_another_root_refused(
    guide_pki: Path, other_pki: Path, tmp_path: Path
) -> None:
    # Same subject names, different root key: only the signature tells them apart.
    intermediate, key = other_pki / "intermediate-ca.crt", other_pki / "intermediate-ca.key"
    assert_import_refused(tmp_path, "not signed by", guide_pki / "root-ca.crt", intermediate, key)


def test_key_that_does_not_match_refused(guide_pki: Path, tmp_path: Path) -> None:
    sh("openssl genrsa -out stranger.key 2048", tmp_path)
    root, intermediate = guide_pki / "root-ca.crt", guide_pki / "intermediate-ca.crt"
    assert_import_refused(tmp_path, "does not match", root, intermediate, tmp_path / "stranger.key")


def test_non_ca_certificate_as_intermediate_refused(guide_pki: Path, tmp_path: Path) -> None:
    root, root_key, conf = (shlex.quote(str(guide_pki / n)) for n in CA_FILES)
    sh("openssl req -new -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr "
       "-subj /C=US/O=BlueRobin/CN=leaf.bluerobin.local", tmp_path)  # fmt: skip
    sh(f"openssl x509 -req -in leaf.csr -CA {root} -CAkey {root_key} -passin pass:{ROOT_PASS} "
       f"-set_serial 0x5eed -days 30 -sha256 -extfile {conf} -extensions usr_cert -out leaf.crt",
       tmp_path)  # fmt: skip
    sh(f"openssl verify -CAfile {root} leaf.crt", tmp_path)  # a good leaf, but no CA
    leaf, key = tmp_path / "leaf.crt", tmp_path / "leaf.key"
    assert_import_refused(tmp_path, "not a CA certificate", guide_pki / "root-ca.crt", leaf, key)


def test_root_as_intermediate_refused(guide_pki: Path, tmp_path: Path) -> None:
    # Accepted until check_hierarchy learnt it: the root key ended up in ca/ (online).
    (tmp_path / "root.pass").write_text(ROOT_PASS + "\n")
    root, root_key = guide_pki / "root-ca.crt", guide_pki / "root-ca.key"
    assert_import_refused(
        tmp_path, "the root itself", root, root, root_key, extra="--passphrase-file root.pass"
    )


def test_serve_and_renew_an_adopted_hierarchy(
    guide_pki: Path, tmp_path: Path, serve_factory: Callable[..., Server]
) -> None:
    data_dir = tmp_path / "data"
    import_pki(guide_pki, data_dir)
    server = serve_factory(data_dir)
    assert "No CA found" not in server.log("stdout")
    served = https_get(server.port, "/roots/chain.pem", guide_pki / "root-ca.crt")  # guide's root
    assert x509.load_pem_x509_certificates(served.body) == load_certs(guide_pki / "ca-chain.pem")
    (tmp_path / "root.pass").write_text(ROOT_PASS + "\n")
    renew = ["--data-dir", str(data_dir), "intermediate", "renew", "--root-key"]
    run_cli(*renew, str(guide_pki / "root-ca.key"), "--passphrase-file", "root.pass", cwd=tmp_path)
    new = data_dir / "ca" / "intermediate-ca.crt"
    sh(f"openssl verify -CAfile {shlex.quote(str(guide_pki / 'root-ca.crt'))} {new}", tmp_path)
