"""The hierarchy on disk: create, check, import and renew."""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store

from acme_ca.errors import PkiError
from acme_ca.pki import files
from acme_ca.pki.hierarchy import (
    HierarchyFiles,
    HierarchySpec,
    check_hierarchy,
    create_hierarchy,
    import_hierarchy,
    renew_intermediate,
)
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, load_key, same_key, write_key
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest, build_intermediate, build_root, ca_name
from tests.conftest import ROOT_PASSPHRASE, Hierarchy, hierarchy_paths

FIVE = ["root_key", "root_cert", "intermediate_cert", "intermediate_key", "chain"]
FAST = HierarchySpec(root_key_type=KeyType.EC_P384, intermediate_key_type=KeyType.EC_P256)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def create(paths: HierarchyFiles, now: datetime, passphrase: bytes = ROOT_PASSPHRASE) -> None:
    create_hierarchy(FAST, paths, root_passphrase=passphrase, intermediate_passphrase=None, now=now)


def renew(paths: HierarchyFiles, now: datetime, **changes: object) -> x509.Certificate:
    kwargs: dict = {"root_passphrase": ROOT_PASSPHRASE, "intermediate_passphrase": None,
                    "keep_old_key_until": now + timedelta(days=90)}
    return renew_intermediate(paths, now=now, **{**kwargs, **changes})


def test_create_writes_the_five_files_private_keys_in_private_directories(
    hierarchy: Hierarchy,
) -> None:
    p = hierarchy.paths
    assert mode(p.root_key) == mode(p.intermediate_key) == 0o600
    assert mode(p.root_key.parent) == mode(p.intermediate_key.parent) == 0o700
    assert mode(p.root_cert) == mode(p.intermediate_cert) == mode(p.chain) == 0o644
    assert not list(p.intermediate_cert.parent.glob(".*.tmp"))  # no temporary files left
    assert files.load_certificates(p.chain) == [hierarchy.intermediate, hierarchy.root]
    assert files.load_certificate(p.root_cert) == hierarchy.root
    assert files.load_certificate(p.intermediate_cert) == hierarchy.intermediate


def test_root_key_is_encrypted(hierarchy: Hierarchy) -> None:
    path = hierarchy.paths.root_key
    with pytest.raises(PkiError, match="encrypted"):
        load_key(path, None)
    with pytest.raises(PkiError, match="wrong passphrase"):
        load_key(path, b"not the passphrase")
    assert same_key(load_key(path, ROOT_PASSPHRASE), hierarchy.root.public_key())


def test_intermediate_key_is_encrypted_only_when_asked(
    make_hierarchy: Callable[..., Hierarchy],
) -> None:
    plain = make_hierarchy("plain")
    assert same_key(load_key(plain.paths.intermediate_key, None), plain.intermediate.public_key())
    locked = make_hierarchy("locked", intermediate_passphrase=b"intermediate pass")
    with pytest.raises(PkiError, match="encrypted"):
        load_key(locked.paths.intermediate_key, None)


@pytest.mark.parametrize("which", FIVE)
def test_create_refuses_to_overwrite_any_file(tmp_path: Path, now: datetime, which: str) -> None:
    paths = hierarchy_paths(tmp_path)
    existing = getattr(paths, which)
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"keep me")
    with pytest.raises(PkiError, match="already exists; refusing to overwrite"):
        create(paths, now)
    assert existing.read_bytes() == b"keep me"
    assert [name for name in FIVE if getattr(paths, name).exists()] == [which]


def test_create_needs_a_root_passphrase(tmp_path: Path, now: datetime) -> None:
    with pytest.raises(PkiError, match="passphrase"):
        create(hierarchy_paths(tmp_path), now, passphrase=b"")
    assert not (tmp_path / "offline").exists()


# check_hierarchy: each broken triple gives one line naming what is wrong.


def inter_of(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    not_before: datetime,
    validity: timedelta = timedelta(days=365),
) -> x509.Certificate:
    return build_intermediate(
        root_cert=root,
        root_key=root_key,
        public_key=key.public_key(),
        subject=ca_name("Inter", None, None),
        not_before=not_before,
        validity=validity,
    )


CHECK_FRAGMENTS = {
    "expired root": "root certificate expired on",
    "future root": "root certificate is not valid before",
    "expired intermediate": "intermediate certificate expired on",
    "non-CA root": "root certificate is not a CA certificate",
    "non-CA intermediate": "intermediate certificate is not a CA certificate",
    "no keyCertSign": "intermediate certificate may not sign certificates (keyUsage lacks",
    "no keyUsage": "intermediate certificate has no keyUsage",
    "root not self-signed": "root certificate is not self-signed",
    "another root": "intermediate certificate is not signed by root certificate",
    "key not matching": "intermediate key does not match intermediate certificate",
}


def broken_triple(now: datetime, make_ca_cert: Callable[..., x509.Certificate], case: str) -> tuple:
    """(root, intermediate, intermediate key) with one thing wrong."""
    rk, ik = p256(), p256()
    hour_ago, old = now - timedelta(hours=1), now - timedelta(days=400)
    root = build_root(rk, ca_name("Root", None, None), hour_ago)
    good = inter_of(root, rk, ik, hour_ago)
    signed = {"issuer": (root, rk)}
    return {
        "expired root": lambda: (build_root(rk, root.subject, old, timedelta(days=365)), good, ik),
        "future root": lambda: (build_root(rk, root.subject, now + timedelta(days=1)), good, ik),
        "expired intermediate": lambda: (root, inter_of(root, rk, ik, old), ik),
        "non-CA root": lambda: (make_ca_cert(rk, ca=False), good, ik),
        "non-CA intermediate": lambda: (root, make_ca_cert(ik, ca=False, **signed), ik),
        "no keyCertSign": lambda: (root, make_ca_cert(ik, key_cert_sign=False, **signed), ik),
        "no keyUsage": lambda: (root, make_ca_cert(ik, key_usage=None, **signed), ik),
        "root not self-signed": lambda: (good, good, ik),
        "another root": lambda: (build_root(p256(), root.subject, hour_ago), good, ik),
        "key not matching": lambda: (root, good, p256()),
    }[case]()


@pytest.mark.parametrize("case", list(CHECK_FRAGMENTS))
def test_check_hierarchy_names_the_problem(
    now: datetime, make_ca_cert: Callable[..., x509.Certificate], case: str
) -> None:
    """RFC 5280 6.1.3 (validity, signature), 4.2.1.9 (CA:TRUE), 4.2.1.3 (keyCertSign)."""
    root, inter, key = broken_triple(now, make_ca_cert, case)
    with pytest.raises(PkiError) as caught:
        check_hierarchy(root, inter, key.public_key(), now)
    assert CHECK_FRAGMENTS[case] in str(caught.value)
    assert "\n" not in str(caught.value)


def test_check_hierarchy_accepts_a_good_triple(hierarchy: Hierarchy) -> None:
    key = load_key(hierarchy.paths.intermediate_key, None)
    check_hierarchy(hierarchy.root, hierarchy.intermediate, key.public_key(), hierarchy.now)


# import_hierarchy


def import_from(src: Hierarchy, dest: Path, **changes: object) -> tuple:
    kwargs: dict = {
        "root_cert_path": src.paths.root_cert,
        "intermediate_cert_path": src.paths.intermediate_cert,
        "intermediate_key": src.paths.intermediate_key,
        "passphrase": src.intermediate_passphrase,
        "paths": hierarchy_paths(dest),
        "new_passphrase": None,
        "now": src.now,
    }
    return import_hierarchy(**{**kwargs, **changes})


def test_import_adopts_a_hierarchy(
    make_hierarchy: Callable[..., Hierarchy], tmp_path: Path
) -> None:
    src = make_hierarchy("src", intermediate_passphrase=b"intermediate pass")
    dest = hierarchy_paths(tmp_path / "dest")
    assert import_from(src, tmp_path / "dest") == (src.root, src.intermediate)
    assert files.load_certificates(dest.chain) == [src.intermediate, src.root]
    assert dest.root_cert.read_bytes() == src.paths.root_cert.read_bytes()
    assert mode(dest.intermediate_key) == 0o600
    key = load_key(dest.intermediate_key, None)  # new_passphrase=None: written in the clear
    assert same_key(key, src.intermediate.public_key())
    assert not dest.root_key.exists()  # the root key is never asked for


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("wrong passphrase", "wrong passphrase for intermediate key"),
        ("no passphrase", "is encrypted: a passphrase is needed"),
        ("other key", "does not match"),
        ("other root", "is not signed by"),
        ("garbage root", "does not hold a readable X.509 certificate"),
        ("missing key", "does not exist"),
        ("already imported", "already exists; refusing to overwrite"),
    ],
)
def test_import_refuses(
    make_hierarchy: Callable[..., Hierarchy], tmp_path: Path, case: str, fragment: str
) -> None:
    src = make_hierarchy("src", intermediate_passphrase=b"intermediate pass")
    other = make_hierarchy("other")
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    changes = {
        "wrong passphrase": {"passphrase": b"not it"},
        "no passphrase": {"passphrase": None},
        "other key": {"intermediate_key": other.paths.intermediate_key, "passphrase": None},
        "other root": {"root_cert_path": other.paths.root_cert},
        "garbage root": {"root_cert_path": garbage},
        "missing key": {"intermediate_key": tmp_path / "missing.key"},
        "already imported": {"paths": src.paths},
    }[case]
    with pytest.raises(PkiError, match=fragment):
        import_from(src, tmp_path / "dest", **changes)
    assert not (tmp_path / "dest").exists()


def test_a_refused_import_writes_nothing(
    make_hierarchy: Callable[..., Hierarchy], tmp_path: Path
) -> None:
    src = make_hierarchy("src")
    dest = hierarchy_paths(tmp_path / "dest")
    dest.chain.parent.mkdir(parents=True)
    dest.chain.write_bytes(b"someone else's chain")
    with pytest.raises(PkiError, match="already exists"):
        import_from(src, tmp_path / "dest")
    assert sorted(p.name for p in dest.chain.parent.iterdir()) == ["ca-chain.pem"]


# renew_intermediate


def test_renew_makes_a_new_key_with_the_same_name_and_constraints(hierarchy: Hierarchy) -> None:
    p, old = hierarchy.paths, hierarchy.intermediate
    old_key_pem = p.intermediate_key.read_bytes()
    later = hierarchy.now + timedelta(days=1)
    new = renew(p, later)
    new_key = load_key(p.intermediate_key, None)
    assert same_key(new_key, new.public_key()) and not same_key(new_key, old.public_key())
    assert new.subject == old.subject and new.serial_number != old.serial_number
    assert (
        new.extensions.get_extension_for_class(x509.NameConstraints).value
        == old.extensions.get_extension_for_class(x509.NameConstraints).value
    )
    assert files.load_certificates(p.chain) == [new, hierarchy.root]
    stamp = format(old.serial_number, "x")
    archive = p.archive_dir()
    assert files.load_certificate(archive / f"intermediate-ca.{stamp}.crt") == old
    assert same_key(load_key(archive / f"intermediate-ca.{stamp}.key", None), old.public_key())
    assert mode(archive / f"intermediate-ca.{stamp}.key") == 0o600
    assert old_key_pem != p.intermediate_key.read_bytes()
    # The new chain works end to end: a leaf from it verifies to the unchanged root.
    issuer = Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain, None, later)
    name = "db.bluerobin.local"
    leaf = issuer.issue(LeafRequest(p256().public_key(), (name,), (), later, later + timedelta(1),
                                    SERVER_AUTH))
    builder = PolicyBuilder().store(Store([hierarchy.root])).time(later)
    verifier = builder.build_server_verifier(x509.DNSName(name))
    assert verifier.verify(leaf, [new]) == [leaf, new, hierarchy.root]


def test_renew_keeps_an_encrypted_intermediate_encrypted(
    make_hierarchy: Callable[..., Hierarchy],
) -> None:
    h = make_hierarchy(intermediate_passphrase=b"intermediate pass")
    pw = b"intermediate pass"
    new = renew(h.paths, h.now, intermediate_passphrase=pw, key_type=KeyType.EC_P384)
    with pytest.raises(PkiError, match="encrypted"):
        load_key(h.paths.intermediate_key, None)
    key = load_key(h.paths.intermediate_key, b"intermediate pass")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    assert same_key(key, new.public_key())


def test_renew_refuses_a_wrong_root_passphrase(hierarchy: Hierarchy) -> None:
    p = hierarchy.paths
    before = p.intermediate_cert.read_bytes()
    with pytest.raises(PkiError, match="wrong passphrase for root key"):
        renew(p, hierarchy.now, root_passphrase=b"not it")
    assert p.intermediate_cert.read_bytes() == before
    assert not p.archive_dir().exists()


def test_renew_refuses_a_root_key_that_does_not_match(hierarchy: Hierarchy) -> None:
    p = hierarchy.paths
    p.root_key.unlink()
    write_key(p.root_key, p256(), ROOT_PASSPHRASE, exclusive=True)
    with pytest.raises(PkiError, match="does not match"):
        renew(p, hierarchy.now)


def test_renew_an_imported_rsa_intermediate_of_an_odd_size(tmp_path: Path, now: datetime) -> None:
    paths = hierarchy_paths(tmp_path)
    root_key = p256()
    root = build_root(root_key, ca_name("Root", None, None), now)
    inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2304)
    inter = inter_of(root, root_key, inter_key, now)  # type: ignore[arg-type]
    write_key(paths.root_key, root_key, ROOT_PASSPHRASE, exclusive=True)
    write_key(paths.intermediate_key, inter_key, None, exclusive=True)
    files.write_file(paths.root_cert, files.pem(root), mode=0o644)
    files.write_file(paths.intermediate_cert, files.pem(inter), mode=0o644)
    files.write_file(paths.chain, files.pem(inter, root), mode=0o644)
    new = renew(paths, now)
    public = new.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size >= 2304
