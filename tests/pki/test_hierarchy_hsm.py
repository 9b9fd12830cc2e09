"""The hierarchy with its intermediate key on a PKCS#11 token (SoftHSM2): create and
renew work with the key's public half; the token keeps the private one; the archive
names a replaced token key by its RFC 7512 URI pinned to its CKA_ID (section 2.3,
``id``), with no PIN, PIN file or library: those are the configuration's."""

from __future__ import annotations

import stat
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.archive import load_archive, read_key_uri
from acme_ca.pki.hierarchy import (
    HierarchyFiles,
    HierarchySpec,
    create_hierarchy,
    renew_intermediate,
)
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, load_key, same_key
from tests.cli.hsm import private_keys
from tests.conftest import ROOT_PASSPHRASE, hierarchy_paths
from tests.softhsm import SoftHsm

FAST = HierarchySpec(root_key_type=KeyType.EC_P384, intermediate_key_type=KeyType.EC_P256)


def on_token(paths: HierarchyFiles, token: SoftHsm, uri: str | None = None) -> HierarchyFiles:
    return replace(paths, intermediate_key=Pkcs11Uri.parse(uri or token.uri()),
                   pkcs11_module=token.module)


def renew(paths: HierarchyFiles, now: datetime, **changes: object) -> x509.Certificate:
    kwargs: dict = {"root_passphrase": ROOT_PASSPHRASE, "intermediate_passphrase": None,
                    "keep_old_key_until": now + timedelta(days=90)}
    return renew_intermediate(paths, now=now, **{**kwargs, **changes})


def issuer_of(paths: HierarchyFiles, now: datetime, location: object = None) -> Issuer:
    return Issuer.load(paths.intermediate_cert, location or paths.intermediate_key,  # type: ignore[arg-type]
                       paths.chain, None, now, pkcs11_module=paths.pkcs11_module,
                       archived_keys=True)


def test_create_writes_no_intermediate_key_file(
    tmp_path: Path, now: datetime, softhsm: SoftHsm
) -> None:
    paths = on_token(hierarchy_paths(tmp_path), softhsm)
    root, inter = create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                                   intermediate_passphrase=b"unused: no key file", now=now)
    assert sorted(p.name for p in (tmp_path / "ca").iterdir()) == [
        "ca-chain.pem", "intermediate-ca.crt", "root-ca.crt"]
    assert files.load_certificates(paths.chain) == [inter, root]
    issuer = issuer_of(paths, now)
    assert same_key(issuer.signer.public_key, inter.public_key())  # type: ignore[arg-type]


def test_a_failed_create_leaves_no_key_on_the_token(
    tmp_path: Path, now: datetime, softhsm: SoftHsm
) -> None:
    """The token key is made first (a token that cannot be used is said before the root
    key); when what follows fails, it is destroyed again."""
    paths = on_token(hierarchy_paths(tmp_path), softhsm)
    paths.root_key.parent.mkdir(parents=True)
    taken = paths.root_key.with_suffix(".tmp")  # the root key cannot be written: a directory
    paths = replace(paths, root_key=taken / "root-ca.key")
    taken.write_text("a file where a directory must be")
    with pytest.raises(PkiError):
        create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                         intermediate_passphrase=None, now=now)
    assert private_keys(softhsm) == []


def test_renew_on_the_token_archives_a_pinned_uri(
    tmp_path: Path, now: datetime, softhsm: SoftHsm
) -> None:
    """token -> token: the new key is made on the same token under the same label; the
    old key stays, the archive names it by its CKA_ID (one line, 0600, no query) and
    it signs its intermediate's CRLs; the server's key is the new one."""
    paths = on_token(hierarchy_paths(tmp_path), softhsm)
    _, old = create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                              intermediate_passphrase=None, now=now)
    new = renew(paths, now, key_type=KeyType.EC_P384)
    labels = sorted((k["label"], k["id"]) for k in private_keys(softhsm))
    assert [label for label, _ in labels] == ["intermediate", "intermediate"]
    (archived,) = load_archive(paths.archive_dir())
    assert archived.on_token and not archived.key_path.exists()
    line = archived.key_uri_path.read_text()
    assert line.count("\n") == 1 and stat.S_IMODE(archived.key_uri_path.stat().st_mode) == 0o600
    uri = Pkcs11Uri.parse(line.strip())
    assert uri.object == "intermediate" and uri.object_id is not None
    assert uri.object_id.hex() in {key_id for _, key_id in labels}
    assert (uri.pin_value, uri.pin_source, uri.module_path) == (None, None, None)
    issuer = issuer_of(paths, now)
    assert same_key(issuer.signer.public_key, new.public_key())  # type: ignore[arg-type]
    (_, crl_signer) = issuer.crl_signers()
    assert crl_signer.certificate == old and crl_signer.held_at == archived.key_uri_path
    assert same_key(crl_signer.signer.public_key, old.public_key())  # type: ignore[arg-type]


def test_renew_from_a_key_file_to_the_token(
    make_hierarchy: object, now: datetime, softhsm: SoftHsm
) -> None:
    """file -> token: the old key file is archived as today (0600), the live one goes
    (no key file but the archive's), and the new intermediate's key is on the token."""
    h = make_hierarchy()  # type: ignore[operator]
    paths = replace(h.paths, pkcs11_module=softhsm.module)
    old_key = load_key(paths.intermediate_key, None)
    new = renew(paths, now, key_uri=Pkcs11Uri.parse(softhsm.uri()))
    assert not paths.intermediate_key.exists()  # type: ignore[union-attr]
    (archived,) = load_archive(paths.archive_dir())
    assert not archived.on_token
    assert same_key(load_key(archived.key_path, None), old_key)
    issuer = issuer_of(paths, now, Pkcs11Uri.parse(softhsm.uri()))
    assert same_key(issuer.signer.public_key, new.public_key())  # type: ignore[arg-type]
    assert len(private_keys(softhsm)) == 1


def test_a_renewal_that_fails_after_the_key_was_made_leaves_no_key(
    tmp_path: Path, now: datetime, softhsm: SoftHsm
) -> None:
    """A wrong root passphrase, found after the new key was made on the token: the new
    key is destroyed, the old one and every file are as they were."""
    paths = on_token(hierarchy_paths(tmp_path), softhsm)
    create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                     intermediate_passphrase=None, now=now)
    before = private_keys(softhsm)
    cert = paths.intermediate_cert.read_bytes()
    with pytest.raises(PkiError, match="wrong passphrase for root key"):
        renew(paths, now, root_passphrase=b"not the root passphrase")
    assert private_keys(softhsm) == before
    assert paths.intermediate_cert.read_bytes() == cert
    assert not paths.archive_dir().exists()


def test_an_archived_uri_without_a_pin_takes_the_configured_one(
    tmp_path: Path, now: datetime, softhsm: SoftHsm
) -> None:
    """A pin-value is never written to the archive (RFC 7512 2.4 keeps it out of files
    anyway): an archived key then logs in with [ca] intermediate_key's PIN."""
    with_value = f"pkcs11:token={softhsm.label};object=intermediate?pin-value={softhsm.pin}"
    paths = on_token(hierarchy_paths(tmp_path), softhsm, with_value)
    create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                     intermediate_passphrase=None, now=now)
    renew(paths, now)
    (archived,) = load_archive(paths.archive_dir())
    text = archived.key_uri_path.read_text()
    assert "pin-value" not in text and softhsm.pin not in text.replace(softhsm.label, "")
    with pytest.raises(PkiError, match="not on one: no PIN"):
        read_key_uri(archived, None)
    assert read_key_uri(archived, paths.intermediate_key).pin() == softhsm.pin  # type: ignore[arg-type]
    (_, crl_signer) = issuer_of(paths, now).crl_signers()
    assert crl_signer.certificate == archived.certificate


def test_an_archived_uri_chooses_neither_the_library_nor_the_pin(
    tmp_path: Path, now: datetime, softhsm: SoftHsm
) -> None:
    """A .key-uri edited or planted in the archive names a library and a PIN file: the
    archived key still uses the configured ones (here the configured URI's module-path,
    [ca] pkcs11_module being unset), and signs its intermediate's CRLs."""
    configured = f"{softhsm.uri()}&module-path={softhsm.module}"
    paths = replace(on_token(hierarchy_paths(tmp_path), softhsm, configured),
                    pkcs11_module=None)
    create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                     intermediate_passphrase=None, now=now)
    renew(paths, now)
    (archived,) = load_archive(paths.archive_dir())
    named = archived.key_uri_path.read_text().strip()
    archived.key_uri_path.write_text(
        f"{named}?pin-source=file:{tmp_path / 'no-pin'}&module-path={tmp_path / 'lib.so'}\n")
    issuer = issuer_of(paths, now)
    assert not issuer.unreadable
    (_, crl_signer) = issuer.crl_signers()
    assert crl_signer.certificate == archived.certificate


def test_the_configured_pin_is_not_sent_to_another_token(
    tmp_path: Path, now: datetime, softhsm: SoftHsm
) -> None:
    """An archived name whose token is not [ca] intermediate_key's: no PIN goes there,
    and that archived key signs no CRL, saying why."""
    paths = on_token(hierarchy_paths(tmp_path), softhsm)
    create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                     intermediate_passphrase=None, now=now)
    renew(paths, now)
    (archived,) = load_archive(paths.archive_dir())
    named = archived.key_uri_path.read_text()
    archived.key_uri_path.write_text(named.replace(f"token={softhsm.label}", "token=other"))
    issuer = issuer_of(paths, now)
    (why,) = issuer.unreadable.values()
    assert "another token" in why and "PIN is not sent there" in why


@pytest.mark.parametrize("content", ["not a uri", "pkcs11:token=acme-ca;object=intermediate"])
def test_an_archived_uri_that_names_no_single_key_is_not_read(
    tmp_path: Path, now: datetime, softhsm: SoftHsm, content: str
) -> None:
    """A damaged name, or one without its id (it could name the current key, which
    carries the same label): that archived key signs no CRL, and says why."""
    paths = on_token(hierarchy_paths(tmp_path), softhsm)
    create_hierarchy(FAST, paths, root_passphrase=ROOT_PASSPHRASE,
                     intermediate_passphrase=None, now=now)
    renew(paths, now)
    (archived,) = load_archive(paths.archive_dir())
    archived.key_uri_path.write_text(content + "\n")
    issuer = issuer_of(paths, now)
    assert len(list(issuer.crl_signers())) == 1
    (why,) = issuer.unreadable.values()
    assert str(archived.key_uri_path) in why and "\n" not in why
