"""The command line, in process: exit codes, one-line errors, and the files each command makes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from acme_ca.cli.main import main
from acme_ca.cli.serve import root_key_warning
from acme_ca.clock import FakeClock
from acme_ca.config import load_config
from acme_ca.domain.models import CertificateStatus, serial_hex
from acme_ca.errors import PkiError
from acme_ca.pki import files
from acme_ca.pki.keys import load_key
from acme_ca.store import open_store
from tests.cli.conftest import FAST, ROOT_PASS, Run, assert_one_line_error, secret
from tests.conftest import ROOT_PASSPHRASE, Hierarchy

CsrFile = Callable[..., Path]
ORG = ["--org", "BlueRobin", "--country", "US"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "acme-ca-data"


@pytest.fixture
def initialised(run: Run, tmp_path: Path) -> Path:
    code, _, err = run("init", "--passphrase-file", secret(tmp_path, ROOT_PASS), *FAST)
    assert code == 0, err
    return tmp_path / "acme-ca-data"


def test_init_creates_the_hierarchy_and_says_where_the_root_key_is(
    run: Run, tmp_path: Path, data: Path
) -> None:
    code, out, err = run("init", "--passphrase-file", secret(tmp_path, ROOT_PASS), *FAST, *ORG)
    assert (code, err) == (0, "")
    root_key = data / "offline" / "root-ca.key"
    assert f"Root key: {root_key}" in out
    for name in ("root-ca.crt", "intermediate-ca.crt", "intermediate-ca.key", "ca-chain.pem"):
        assert (data / "ca" / name).is_file()
    root, inter = files.load_certificates(data / "ca" / "ca-chain.pem")[::-1]
    with pytest.raises(PkiError, match="encrypted"):
        load_key(root_key, None)
    assert load_key(root_key, ROOT_PASS.encode()).public_key() == root.public_key()
    assert root.subject.rfc4514_string() == "CN=BlueRobin Root CA,O=BlueRobin,C=US"
    # The intermediate is limited to the policy's domains plus the server's own names:
    # its loopback address, never the single label "localhost" (ServerConfig.own_names).
    permitted = inter.extensions.get_extension_for_class(x509.NameConstraints).value
    names = [str(n.value) for n in permitted.permitted_subtrees]
    assert names == ["bluerobin.local", "127.0.0.1/32"]


def test_init_with_the_passphrase_in_the_environment(
    run: Run, monkeypatch: pytest.MonkeyPatch, data: Path
) -> None:
    monkeypatch.setenv("ACME_CA_ROOT_PASSPHRASE", "env root passphrase")
    code, out, _ = run("init", *FAST, "--no-name-constraints")
    assert code == 0
    load_key(data / "offline" / "root-ca.key", b"env root passphrase")
    inter = files.load_certificate(data / "ca" / "intermediate-ca.crt")
    with pytest.raises(x509.ExtensionNotFound):
        inter.extensions.get_extension_for_class(x509.NameConstraints)
    assert "intermediate limited to: none" in out


def test_init_twice_is_refused(run: Run, initialised: Path, tmp_path: Path) -> None:
    before = (initialised / "offline" / "root-ca.key").read_bytes()
    code, _, err = run("init", "--passphrase-file", tmp_path / "root.pass", *FAST)
    assert_one_line_error(code, err, "already exists; refusing to overwrite a CA")
    assert (initialised / "offline" / "root-ca.key").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "no passphrase given"),  # no file, no variable, no terminal
        (("--passphrase-file", "short.pass"), "at least 8 characters"),
        (("--passphrase-file", "missing.pass"), "cannot read passphrase file"),
        (("--passphrase-file", "root.pass", "--country", "USA"), "--country"),
        (("--passphrase-file", "root.pass", "--root-validity", "10y"), "--root-validity"),
    ],
)
def test_init_bad_input(run: Run, tmp_path: Path, data: Path, args: tuple, fragment: str) -> None:
    secret(tmp_path, ROOT_PASS)
    secret(tmp_path, "short", "short.pass")
    code, _, err = run("init", *FAST, *args)
    assert_one_line_error(code, err, fragment)
    assert not data.exists()


def import_args(src: Hierarchy, **changes: Path) -> list[object]:
    paths = {
        "--root-cert": src.paths.root_cert,
        "--intermediate-cert": src.paths.intermediate_cert,
        "--intermediate-key": src.paths.intermediate_key,
    }
    paths.update({f"--{k.replace('_', '-')}": v for k, v in changes.items()})
    return ["init", "--import", *[x for pair in paths.items() for x in pair]]


def test_init_import(
    run: Run, make_hierarchy: Callable[..., Hierarchy], tmp_path: Path, data: Path
) -> None:
    src = make_hierarchy("src", intermediate_passphrase=b"intermediate pass")
    pass_file = secret(tmp_path, "intermediate pass", "inter.pass")
    code, out, err = run(*import_args(src), "--passphrase-file", pass_file)
    assert (code, err) == (0, "")
    assert "Imported the hierarchy" in out and "intermediate key is encrypted" in out
    assert files.load_certificates(data / "ca" / "ca-chain.pem") == [src.intermediate, src.root]
    key = load_key(data / "ca" / "intermediate-ca.key", b"intermediate pass")
    assert key.public_key() == src.intermediate.public_key()
    assert not (data / "offline").exists()


@pytest.mark.parametrize(
    "case",
    ["wrong passphrase", "key not matching", "other root", "expired", "not a CA", "missing flag"],
)
def test_init_import_refuses(
    run: Run,
    make_hierarchy: Callable[..., Hierarchy],
    make_ca_cert: Callable[..., x509.Certificate],
    tmp_path: Path,
    data: Path,
    case: str,
) -> None:
    src = make_hierarchy("src", intermediate_passphrase=b"intermediate pass")
    other = make_hierarchy("other")
    root_key = load_key(src.paths.root_key, ROOT_PASSPHRASE)
    inter_key = load_key(src.paths.intermediate_key, b"intermediate pass")
    bad = tmp_path / "bad.crt"
    right = case != "wrong passphrase"
    pass_file = secret(tmp_path, "intermediate pass" if right else "not it", "inter.pass")
    issuer = (src.root, root_key)
    if case == "expired":
        start = src.now - timedelta(days=400)
        bad.write_bytes(files.pem(make_ca_cert(inter_key, issuer=issuer, not_before=start)))
    elif case == "not a CA":
        bad.write_bytes(files.pem(make_ca_cert(inter_key, issuer=issuer, ca=False)))
    argv, fragment = {
        "wrong passphrase": (import_args(src), "wrong passphrase for intermediate key"),
        "key not matching": (
            import_args(src, intermediate_key=other.paths.intermediate_key),
            "does not match",
        ),
        "other root": (import_args(src, root_cert=other.paths.root_cert), "is not signed by"),
        "expired": (import_args(src, intermediate_cert=bad), "expired on"),
        "not a CA": (import_args(src, intermediate_cert=bad), "is not a CA certificate"),
        "missing flag": (import_args(src)[:-2], "--import needs --intermediate-key"),
    }[case]
    code, out, err = run(*argv, "--passphrase-file", pass_file)
    assert_one_line_error(code, err, fragment)
    assert out == "" and not data.exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server\n", "is not valid TOML"),
        ("[server]\nport = 8555\n", "unknown key server.port"),
        ('[policy]\nmax_validity = "90x"\n', "policy.max_validity: "),
    ],
)
def test_a_bad_config_file_is_one_line(run: Run, tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "acme-ca.toml"
    config.write_text(text)
    code, _, err = run("--config", config, "trust", "--os", "debian")
    assert_one_line_error(code, err, fragment)


def test_the_config_comes_from_the_environment(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "env.toml").write_text("[validation]\nhttp01_port = 0\n")
    monkeypatch.setenv("ACME_CA_CONFIG", str(tmp_path / "env.toml"))
    code, _, err = run("trust", "--os", "debian")
    assert_one_line_error(code, err, "validation.http01_port")


@pytest.fixture
def csr_file(tmp_path: Path, make_csr: Callable[..., x509.CertificateSigningRequest]) -> CsrFile:
    def write(*names: str, cn: str | None = None) -> Path:
        path = tmp_path / "host.csr"
        path.write_bytes(make_csr(*names, cn=cn).public_bytes(Encoding.PEM))
        return path

    return write


def test_sign_csr_writes_a_leaf_that_verifies(
    run: Run, initialised: Path, tmp_path: Path, csr_file: CsrFile
) -> None:
    csr = csr_file(cn="postgres.bluerobin.local")  # the guide's CN-only CSR
    code, out, err = run("sign-csr", csr, "--out", tmp_path / "postgres.crt", "--validity", "30d")
    assert code == 0 and out == ""
    assert err.startswith("Signed postgres.bluerobin.local (server, serial ")
    (leaf,) = files.load_certificates(tmp_path / "postgres.crt")
    root = files.load_certificate(initialised / "ca" / "root-ca.crt")
    inter = files.load_certificate(initialised / "ca" / "intermediate-ca.crt")
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=30)
    name = x509.DNSName("postgres.bluerobin.local")
    PolicyBuilder().store(Store([root])).build_server_verifier(name).verify(leaf, [inter])

    async def recorded() -> object:
        store = await open_store(f"sqlite:///{initialised / 'acme-ca.db'}")
        try:
            return await store.get_certificate(serial_hex(leaf.serial_number))
        finally:
            await store.close()

    record = asyncio.run(recorded())
    assert record.status is CertificateStatus.ISSUED  # type: ignore[attr-defined]
    assert record.der == leaf.public_bytes(Encoding.DER)  # type: ignore[attr-defined]


def test_sign_csr_full_chain_to_stdout(run: Run, initialised: Path, csr_file: CsrFile) -> None:
    code, out, _ = run(
        "sign-csr", csr_file("nats.bluerobin.local"), "--full-chain", "--profile", "client"
    )
    assert code == 0
    leaf, inter = x509.load_pem_x509_certificates(out.encode())
    assert inter == files.load_certificate(initialised / "ca" / "intermediate-ca.crt")
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


@pytest.mark.parametrize(
    ("names", "args", "fragment"),
    [
        (("www.example.com",), (), "www.example.com is outside policy"),
        (("db.bluerobin.local",), ("--validity", "91d"), "exceeds profiles.server.max_validity"),
        (("db.bluerobin.local",), ("--validity", "7x"), "--validity: "),
    ],
)
def test_sign_csr_refuses(
    run: Run, initialised: Path, csr_file: CsrFile, names: tuple, args: tuple, fragment: str
) -> None:
    code, out, err = run("sign-csr", csr_file(*names), *args)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_sign_csr_without_a_ca(run: Run, csr_file: CsrFile) -> None:
    code, _, err = run("sign-csr", csr_file("db.bluerobin.local"))
    assert_one_line_error(code, err, "does not exist")


def test_sign_csr_reports_the_validity_asked_for(
    run: Run, initialised: Path, tmp_path: Path, csr_file: CsrFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime.now(UTC).replace(microsecond=500_000)
    monkeypatch.setattr("acme_ca.cli.sign_csr.SystemClock", lambda: FakeClock(start))
    code, _, err = run(
        "sign-csr",
        csr_file("db.bluerobin.local"),
        "--validity",
        "30d",
        "--out",
        tmp_path / "db.crt",
    )
    assert code == 0
    assert " UTC, 30d): " in err


def test_trust_prints_the_debian_steps(run: Run, initialised: Path) -> None:
    code, out, _ = run("trust", "--os", "debian", "--name", "bluerobin-root")
    assert code == 0
    root = initialised / "ca" / "root-ca.crt"
    assert f"cp {root} /usr/local/share/ca-certificates/bluerobin-root.crt" in out.splitlines()
    assert "update-ca-certificates" in out.splitlines()


def test_trust_bundle_writes_the_root(run: Run, initialised: Path, tmp_path: Path) -> None:
    code, out, _ = run("trust", "--bundle", tmp_path / "bundle.pem")
    assert code == 0 and f"Wrote {tmp_path / 'bundle.pem'}" in out
    root_pem = (initialised / "ca" / "root-ca.crt").read_bytes()
    assert (tmp_path / "bundle.pem").read_bytes() == root_pem


def test_intermediate_renew(run: Run, initialised: Path, tmp_path: Path) -> None:
    old = files.load_certificate(initialised / "ca" / "intermediate-ca.crt")
    start = datetime.now(UTC)
    code, out, _ = run("intermediate", "renew", "--passphrase-file", tmp_path / "root.pass")
    assert code == 0 and out.startswith("New intermediate ")
    new, root = files.load_certificates(initialised / "ca" / "ca-chain.pem")
    assert new != old and new.subject == old.subject
    new.verify_directly_issued_by(root)
    archived = initialised / "ca" / "archive" / f"intermediate-ca.{old.serial_number:x}.crt"
    assert archived.exists() and archived.with_suffix(".key").exists()
    # The old key is kept only as long as a certificate it signed can be valid: the
    # longest leaf lifetime ([policy] max_validity 90d, backdate 1m), and renew says so.
    until = datetime.fromisoformat(archived.with_suffix(".key-destroy-after").read_text().strip())
    retention = timedelta(days=90, minutes=1)
    assert start + retention - timedelta(seconds=1) <= until <= datetime.now(UTC) + retention
    line = next(line for line in out.splitlines() if "key will be destroyed" in line)
    assert f"after {until:%Y-%m-%d %H:%M} UTC" in line, out


def test_intermediate_renew_with_constraints_from_config(
    run: Run, initialised: Path, tmp_path: Path
) -> None:
    """Renewal keeps the old name constraints unless asked to take them from the
    configuration, e.g. after [policy] allowed_ip_networks was set (RFC 5280 4.2.1.10)."""
    config = tmp_path / "acme-ca.toml"
    config.write_text('[policy]\nallowed_ip_networks = ["10.0.0.0/8"]\n')
    code, _, err = run("--config", config, "intermediate", "renew",
                       "--passphrase-file", tmp_path / "root.pass")
    assert code == 0, err
    kept = files.load_certificate(initialised / "ca" / "intermediate-ca.crt")
    ips = kept.extensions.get_extension_for_class(x509.NameConstraints).value.permitted_subtrees
    assert "10.0.0.0/8" not in [str(n.value) for n in ips if isinstance(n, x509.IPAddress)]
    code, _, err = run("--config", config, "intermediate", "renew", "--constraints-from-config",
                       "--passphrase-file", tmp_path / "root.pass")
    assert code == 0, err
    new = files.load_certificate(initialised / "ca" / "intermediate-ca.crt")
    permitted = new.extensions.get_extension_for_class(x509.NameConstraints).value
    values = [str(n.value) for n in permitted.permitted_subtrees]
    assert "10.0.0.0/8" in values and "bluerobin.local" in values


def test_intermediate_renew_with_a_wrong_passphrase(
    run: Run, initialised: Path, tmp_path: Path
) -> None:
    before = (initialised / "ca" / "intermediate-ca.crt").read_bytes()
    wrong = secret(tmp_path, "not the root passphrase", "wrong.pass")
    code, _, err = run("intermediate", "renew", "--passphrase-file", wrong)
    assert_one_line_error(code, err, "wrong passphrase for root key")
    assert (initialised / "ca" / "intermediate-ca.crt").read_bytes() == before


def test_serve_warns_of_a_root_key_in_its_data_directory(initialised: Path) -> None:
    """One line naming the root key while it sits beside the server; none once it is gone."""
    config = load_config(None, {"server.data_dir": str(initialised)})
    root_key = initialised / "offline" / "root-ca.key"
    line = root_key_warning(config)
    assert line is not None and "\n" not in line
    assert str(root_key) in line and "move it offline" in line
    root_key.unlink()
    assert root_key_warning(config) is None


@pytest.mark.parametrize(
    "argv", [[], ["no-such-command"], ["init", "--key-type", "dsa"], ["intermediate"]]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage: acme-ca" in capsys.readouterr().err
