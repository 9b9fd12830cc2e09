"""Certificates download with the chain of the intermediate that signed them, before and
after `acme-ca intermediate renew` (RFC 8555 7.4.2: the chain "starting with the
end-entity certificate"; each certificate certifies the one preceding it, RFC 5246 7.4.2)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from acme_ca.cli.main import main
from acme_ca.pki import files
from tests.conftest import ROOT_PASSPHRASE
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import issue, registered

NAME = "web.bluerobin.local"


def openssl_verify(root: Path, pem: bytes, tmp_path: Path, label: str) -> str:
    """`openssl verify` of a downloaded chain: its leaf, its other certificates as the
    untrusted chain, only the root trusted. The command's output, or AssertionError."""
    leaf, *chain = x509.load_pem_x509_certificates(pem)
    leaf_file, chain_file = tmp_path / f"{label}-leaf.pem", tmp_path / f"{label}-chain.pem"
    leaf_file.write_bytes(files.pem(leaf))
    chain_file.write_bytes(files.pem(*chain))
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain_file),
         str(leaf_file)], capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def renew_intermediate(data_dir: Path, tmp_path: Path) -> None:
    """`acme-ca intermediate renew`, as an operator runs it."""
    secret = tmp_path / "root.pass"
    secret.write_bytes(ROOT_PASSPHRASE + b"\n")
    code = main(["--data-dir", str(data_dir), "intermediate", "renew",
                 "--passphrase-file", str(secret)])
    assert code == 0


@pytest.fixture(autouse=True)
def no_config_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("ACME_CA_CONFIG", "ACME_CA_ROOT_PASSPHRASE", "ACME_CA_INTERMEDIATE_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)


async def test_an_old_certificate_keeps_its_chain_after_the_intermediate_is_renewed(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any],
        tmp_path: Path) -> None:
    """Issue, renew the intermediate (the CLI, then serve's SIGHUP reload), download again:
    the old certificate comes with the old intermediate and verifies with openssl; a new
    one comes with the new intermediate."""
    hierarchy = make_hierarchy("pki")
    server: AcmeServer = await server_factory(hierarchy)
    client = await registered(server)
    old_order, before = await issue(server, client, NAME)
    renew_intermediate(tmp_path / "pki", tmp_path)
    assert await server.reload()
    new_intermediate = server.issuer.certificate
    assert new_intermediate != hierarchy.intermediate

    again = await client.post(old_order["certificate"])
    assert again.status == 200
    leaf, *chain = x509.load_pem_x509_certificates(again.body)
    assert chain == [hierarchy.intermediate], "the old certificate names the new intermediate"
    leaf.verify_directly_issued_by(hierarchy.intermediate)
    assert again.body == before
    openssl_verify(hierarchy.paths.root_cert, again.body, tmp_path, "old")

    _, after = await issue(server, client, NAME)
    new_leaf, *new_chain = x509.load_pem_x509_certificates(after)
    assert new_chain == [new_intermediate]
    new_leaf.verify_directly_issued_by(new_intermediate)
    openssl_verify(hierarchy.paths.root_cert, after, tmp_path, "new")
    await server.store.close()


async def test_a_certificate_whose_intermediate_is_unknown_is_not_served_a_wrong_chain(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any],
        tmp_path: Path) -> None:
    """If the archived certificate of the intermediate that signed it is gone (deleted by
    hand), the download is a serverInternal problem, not a chain that does not verify."""
    hierarchy = make_hierarchy("pki")
    server: AcmeServer = await server_factory(hierarchy)
    client = await registered(server)
    order, _ = await issue(server, client, NAME)
    renew_intermediate(tmp_path / "pki", tmp_path)
    for archived in (tmp_path / "pki" / "ca" / "archive").glob("*.crt"):
        archived.unlink()
    assert await server.reload()
    response = await client.post(order["certificate"])
    assert response.status == 500, response.body
    assert response.json()["type"] == "urn:ietf:params:acme:error:serverInternal"
    await server.store.close()
