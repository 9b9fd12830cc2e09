"""The blocklist of known-compromised keys from the operator's side: `acme-ca keys hash`
prints the line for a key in any of its files, whatever its encoding, and `serve` says
at start how many keys the blocklist holds (a warning when none)."""

from __future__ import annotations

import io
import logging
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.config import load_config
from tests.cli.conftest import POLICY, Run, assert_one_line_error, init_ca

LINE = re.compile(r"([0-9a-f]{64})  # (.+)\n")


def openssl(*args: object) -> None:
    subprocess.run(["openssl", *map(str, args)], capture_output=True, check=True)


def key_hash(run: Run, path: Path) -> tuple[str, str]:
    """(hash, comment) of the one line `acme-ca keys hash` prints for `path`."""
    code, out, err = run("keys", "hash", path)
    assert code == 0 and err == "", err
    match = LINE.fullmatch(out)
    assert match, out
    return match[1], match[2]


def test_every_file_of_an_rsa_pss_key_gives_one_line_that_refuses_it(
        run: Run, tmp_path: Path) -> None:
    """An RSASSA-PSS key with parameters (RFC 4055 3.1), which no `sha256sum` of a DER
    form can match: its private key, public key (PEM and DER), CSR and certificate all
    give the same line, the rsaEncryption form of (n, e), and the line in
    [policy] blocked_keys_file makes sign-csr refuse that CSR."""
    openssl("genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
            "-pkeyopt", "rsa_pss_keygen_md:sha256", "-pkeyopt", "rsa_pss_keygen_mgf1_md:sha256",
            "-pkeyopt", "rsa_pss_keygen_saltlen:32", "-out", tmp_path / "pss.key")
    openssl("pkey", "-in", tmp_path / "pss.key", "-pubout", "-out", tmp_path / "pss.pub")
    openssl("pkey", "-in", tmp_path / "pss.key", "-pubout", "-outform", "DER",
            "-out", tmp_path / "pss.der")
    subject = ["-subj", "/CN=db.bluerobin.local",
               "-addext", "subjectAltName=DNS:db.bluerobin.local"]
    openssl("req", "-new", "-key", tmp_path / "pss.key", *subject, "-out", tmp_path / "pss.csr")
    openssl("req", "-x509", "-key", tmp_path / "pss.key", *subject, "-days", "1",
            "-out", tmp_path / "pss.crt")
    files = ["pss.key", "pss.pub", "pss.der", "pss.csr", "pss.crt"]
    lines = {name: key_hash(run, tmp_path / name) for name in files}
    assert len({digest for digest, _ in lines.values()}) == 1, lines
    assert lines["pss.csr"][1] == f"RSA 2048, {tmp_path / 'pss.csr'}"

    config = init_ca(run, tmp_path, POLICY)
    code, out, _ = run("keys", "hash", tmp_path / "pss.pub")
    (tmp_path / "blocked.txt").write_text(out)
    config.write_text(POLICY + 'blocked_keys_file = "blocked.txt"\n')
    code, out, err = run("--config", config, "sign-csr", tmp_path / "pss.csr")
    assert_one_line_error(code, err, "blocklist of known-compromised keys")
    assert out == ""


def test_a_compressed_and_an_uncompressed_ec_key_give_one_line(run: Run, tmp_path: Path) -> None:
    """RFC 5480 2.2: one EC key, two encodings of its point, one line."""
    openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", tmp_path / "k.pem")
    openssl("ec", "-in", tmp_path / "k.pem", "-pubout", "-conv_form", "compressed",
            "-out", tmp_path / "compressed.pub")
    openssl("ec", "-in", tmp_path / "k.pem", "-pubout", "-out", tmp_path / "plain.pub")
    assert (key_hash(run, tmp_path / "compressed.pub")[0]
            == key_hash(run, tmp_path / "plain.pub")[0])
    assert key_hash(run, tmp_path / "k.pem")[1] == f"ECDSA P-256, {tmp_path / 'k.pem'}"


def test_keys_hash_reads_standard_input(run: Run, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "k.der").write_bytes(der)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(der)))
    digest, comment = key_hash(run, Path("-"))
    assert digest == key_hash(run, tmp_path / "k.der")[0] and comment == "ECDSA P-256, -"


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "does not exist"),
    (b"hello\n", "no public key, private key, certificate or CSR"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "no public key, private key, certificate or CSR"),
], ids=["missing", "text", "broken pem"])
def test_keys_hash_of_what_holds_no_key_is_one_line(run: Run, tmp_path: Path,
                                                   content: bytes | None, fragment: str) -> None:
    path = tmp_path / "thing"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run("keys", "hash", path)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_keys_hash_of_an_encrypted_key_says_what_to_give(run: Run, tmp_path: Path) -> None:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256",
            "-pass", "pass:secret", "-out", tmp_path / "k.pem")
    code, out, err = run("keys", "hash", tmp_path / "k.pem")
    assert_one_line_error(code, err, "encrypted")
    assert "public key" in err and out == ""


def test_serve_says_how_many_keys_the_blocklist_holds(tmp_path: Path) -> None:
    """At every start, one line: the number of keys read from [policy] blocked_keys_file,
    a WARNING when it is none (an empty or truncated file refuses nothing)."""
    from acme_ca.cli.serve import blocklist_status

    assert blocklist_status(load_config(None)) is None
    blocklist = tmp_path / "blocked.txt"
    blocklist.write_text("# nothing here yet\n")
    config = load_config(None, {"policy.blocked_keys_file": str(blocklist)})
    level, line = blocklist_status(config)  # type: ignore[misc]
    assert level == logging.WARNING and str(blocklist) in line and "no key" in line
    blocklist.write_text(f"{'a' * 64}\n{'b' * 64}  -\n{'a' * 64}\n")
    config = load_config(None, {"policy.blocked_keys_file": str(blocklist)})
    level, line = blocklist_status(config)  # type: ignore[misc]
    assert level == logging.INFO and "2 keys" in line and "\n" not in line
