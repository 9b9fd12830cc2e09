"""A renewal that fails while it replaces the files (pki/hierarchy.py
``renew_intermediate``) leaves the CA as it was: the current certificate, key and
chain, no archive entry for the intermediate still in use, and no new key on the token;
never a certificate whose key was just destroyed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from acme_ca.errors import PkiError
from acme_ca.pki.archive import load_archive
from acme_ca.pki.hierarchy import create_hierarchy
from tests.cli.hsm import private_keys
from tests.conftest import ROOT_PASSPHRASE, hierarchy_paths
from tests.pki.test_hierarchy_hsm import FAST, issuer_of, on_token, renew
from tests.softhsm import SoftHsm


@pytest.mark.parametrize("on", ["token", "file"])
def test_a_renewal_that_cannot_write_the_chain_changes_nothing(
    tmp_path: Path, now: datetime, softhsm: SoftHsm, on: str
) -> None:
    """The chain cannot be written (here: a directory in its place) after the new
    certificate was: the old certificate and key are put back, the archive holds
    nothing new, the new token key is gone, and the CA still loads."""
    paths = hierarchy_paths(tmp_path)
    if on == "token":
        paths = on_token(paths, softhsm)
    create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                     intermediate_passphrase=None, now=now)
    before = {path: path.read_bytes() for path in paths.online() if path.is_file()}
    keys = private_keys(softhsm)
    chain = paths.chain.read_bytes()
    paths.chain.unlink()
    paths.chain.mkdir()
    with pytest.raises(PkiError, match="cannot write"):
        renew(paths, now)
    paths.chain.rmdir()
    paths.chain.write_bytes(chain)
    assert {path: path.read_bytes() for path in paths.online() if path.is_file()} == before
    assert load_archive(paths.archive_dir()) == []
    assert private_keys(softhsm) == keys
    assert issuer_of(paths, now).certificate.public_bytes  # loads: its key is there


@pytest.mark.parametrize("on", ["token", "file"])
def test_an_init_that_cannot_write_the_chain_leaves_nothing(
    tmp_path: Path, now: datetime, softhsm: SoftHsm, on: str
) -> None:
    """`init` writes the root key and certificates, then cannot write the chain: every
    file it wrote goes again (else the next `init` refuses to overwrite half a CA), and
    the key made on the token is destroyed."""
    paths = hierarchy_paths(tmp_path)
    if on == "token":
        paths = on_token(paths, softhsm)
    keys = private_keys(softhsm)
    (tmp_path / "in-the-way").write_text("a file where the chain's folder would be\n")
    paths = replace(paths, chain=tmp_path / "in-the-way" / "ca-chain.pem")
    with pytest.raises(PkiError, match="cannot"):
        create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                         intermediate_passphrase=None, now=now)
    assert [p for p in (paths.root_key, *paths.online()) if p.is_file()] == []
    assert private_keys(softhsm) == keys
