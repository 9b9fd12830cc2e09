"""The two-tier hierarchy on disk: create it, adopt one made with openssl, renew the intermediate.

    offline/root-ca.key        the root key: encrypted, 0600; belongs offline
    ca/root-ca.crt             public
    ca/intermediate-ca.crt     public
    ca/intermediate-ca.key     0600, optionally encrypted; the server's signing key
    ca/ca-chain.pem            intermediate, then root (as the guide's `cat`)

The intermediate key may instead live on a PKCS#11 token ([ca] intermediate_key a
``pkcs11:`` URI, RFC 7512; pki/token.py): it is generated there, never exported, and no
key file is written; everything here then works with its public key, and the token
signs through a ``Signer``. Only `create_hierarchy` and `renew_intermediate` touch the
root key; a key they make on a token is made first (a token that cannot be used is
said before the root key is read) and destroyed again if the ceremony fails.
"""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.archive import archive_dir, archive_intermediate, archived_at
from acme_ca.pki.keys import (
    KeyType,
    PrivateKey,
    PublicKey,
    generate_key,
    load_key,
    same_key,
    write_key,
)
from acme_ca.pki.profiles import (
    INTERMEDIATE_VALIDITY,
    ROOT_VALIDITY,
    IpNetwork,
    build_intermediate,
    build_root,
    ca_name,
    name_constraints,
)
from acme_ca.pki.token import destroy_token_key, generate_token_key, open_token_signer

KeyLocation = Path | Pkcs11Uri  # [ca] intermediate_key: a key file, or a key on a token


@dataclass(frozen=True, slots=True)
class HierarchyFiles:
    root_key: Path
    root_cert: Path
    intermediate_cert: Path
    intermediate_key: KeyLocation
    chain: Path
    pkcs11_module: Path | None = None  # the PKCS#11 library, for a key on a token

    def archive_dir(self) -> Path:
        return archive_dir(self.intermediate_cert)

    def online(self) -> tuple[Path, ...]:
        """The files `serve` needs: the certificates, the chain, and the intermediate key
        when it is a file."""
        key = (self.intermediate_key,) if isinstance(self.intermediate_key, Path) else ()
        return (self.root_cert, self.intermediate_cert, *key, self.chain)


@dataclass(frozen=True, slots=True)
class HierarchySpec:
    organization: str | None = None
    country: str | None = None
    root_common_name: str = "acme-ca Root CA"
    intermediate_common_name: str = "acme-ca Intermediate CA"
    root_key_type: KeyType = KeyType.RSA4096
    intermediate_key_type: KeyType = KeyType.EC_P384
    permitted_domains: tuple[str, ...] | None = ("bluerobin.local",)  # None: no name constraints
    permitted_networks: tuple[IpNetwork, ...] = ()
    root_validity: timedelta = ROOT_VALIDITY
    intermediate_validity: timedelta = INTERMEDIATE_VALIDITY


@dataclass(frozen=True, slots=True)
class IntermediateKey:
    """An intermediate key as the ceremonies handle it: a private key in memory (read
    from or written to a file), or a key on a token, named by a URI pinned to its
    CKA_ID (RFC 7512 ``id``), of which only the public half is ever seen here."""

    public_key: PublicKey
    private: PrivateKey | None = None  # a file key
    uri: Pkcs11Uri | None = None  # a token key

    @classmethod
    def of(cls, key: PrivateKey) -> IntermediateKey:
        return cls(key.public_key(), private=key)

    def archived(self) -> PrivateKey | Pkcs11Uri:
        """What the archive keeps of it once replaced: the key, or the token key's URI."""
        held = self.private or self.uri
        assert held is not None
        return held


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def create_hierarchy(
    spec: HierarchySpec,
    paths: HierarchyFiles,
    *,
    root_passphrase: bytes,
    intermediate_passphrase: bytes | None,
    now: datetime,
    step: Callable[[str], None] = lambda _: None,
) -> tuple[x509.Certificate, x509.Certificate]:
    """Make a new root and intermediate and write the files (the intermediate key only
    when it is a file); refuse to overwrite any. ``step`` is told each long step as it
    starts (`acme-ca init`'s progress)."""
    if not root_passphrase:
        raise PkiError("the root key needs a passphrase")
    _refuse_existing(paths.root_key, *paths.online())
    # The intermediate key first: a token that cannot be used is said before the long
    # root key generation, and a key made on it is destroyed if what follows fails.
    where = " on the token" if isinstance(paths.intermediate_key, Pkcs11Uri) else ""
    step(f"Generating the intermediate key ({spec.intermediate_key_type}){where}")
    key = new_intermediate_key(paths, spec.intermediate_key_type)
    with _discarded_on_failure(key, paths.pkcs11_module):
        step(f"Generating the root key ({spec.root_key_type})")
        root_key = generate_key(spec.root_key_type)
        root = build_root(
            root_key,
            ca_name(spec.root_common_name, spec.organization, spec.country),
            now,
            spec.root_validity,
        )
        intermediate = build_intermediate(
            root_cert=root,
            root_key=root_key,
            public_key=key.public_key,
            subject=ca_name(spec.intermediate_common_name, spec.organization, spec.country),
            not_before=now,
            validity=spec.intermediate_validity,
            constraints=(
                name_constraints(spec.permitted_domains, spec.permitted_networks)
                if spec.permitted_domains
                else None
            ),
        )
        check_hierarchy(root, intermediate, key.public_key, now)
        step("Writing the keys")
        with _restored_on_failure(paths.root_key, *paths.online()):  # none there before
            write_key(paths.root_key, root_key, root_passphrase, exclusive=True)
            _write_online_files(
                paths, root, intermediate, key.private, intermediate_passphrase, exclusive=True
            )
    return root, intermediate


def new_intermediate_key(paths: HierarchyFiles, key_type: KeyType) -> IntermediateKey:
    """A new key of ``key_type`` where ``paths.intermediate_key`` says: in memory (the
    caller writes it), or generated on the token (sensitive, not extractable)."""
    if isinstance(paths.intermediate_key, Pkcs11Uri):
        public, pinned = generate_token_key(paths.intermediate_key, paths.pkcs11_module, key_type)
        return IntermediateKey(public, uri=pinned)
    return IntermediateKey.of(generate_key(key_type))


@contextlib.contextmanager
def _discarded_on_failure(key: IntermediateKey | None, module: Path | None) -> Iterator[None]:
    """Destroy a key made on a token when what follows fails: a ceremony that did not
    finish leaves no key behind (a key file is simply never written)."""
    try:
        yield
    except BaseException:
        if key is not None and key.uri is not None:
            with contextlib.suppress(PkiError):  # the first error is the one to say
                destroy_token_key(key.uri, module)
        raise


@contextlib.contextmanager
def _restored_on_failure(*paths: Path) -> Iterator[None]:
    """Put ``paths`` back as they were (their bytes and mode, or absent) when what
    follows fails: a renewal that could not write every file leaves the current
    certificate, key and chain, and no archive entry for the intermediate still in use
    (a new certificate beside the old key, or the new token key destroyed under it,
    would be half a CA)."""
    saved: dict[Path, tuple[bytes, int] | None] = {}
    for path in paths:
        if path.is_file():
            saved[path] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
        elif not path.exists() and not path.is_symlink():
            saved[path] = None  # anything else is not this renewal's to put back
    try:
        yield
    except BaseException:
        restored = True  # the first error is the one to say; these only decide what goes
        for path, was in saved.items():
            try:
                if was is not None and (not path.is_file() or path.read_bytes() != was[0]):
                    files.write_file(path, was[0], mode=was[1])
            except (OSError, PkiError):
                restored = False
        if restored:  # else the archive may hold the only copy of the current key
            for path, was in saved.items():
                if was is None:
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
        raise


def _archive_files(paths: HierarchyFiles, certificate: x509.Certificate) -> tuple[Path, ...]:
    """The files ``archive_intermediate`` writes for ``certificate``."""
    item = archived_at(paths.archive_dir(), certificate)
    return item.cert_path, item.key_path, item.key_uri_path, item.deadline_path


def _refuse_existing(*paths: Path) -> None:
    """Check every target before writing any, so a refusal never leaves half a CA."""
    existing = [p for p in paths if p.exists()]
    if existing:
        raise PkiError(f"{existing[0]} already exists; refusing to overwrite a CA")


def _write_online_files(
    paths: HierarchyFiles,
    root: x509.Certificate,
    intermediate: x509.Certificate,
    intermediate_key: PrivateKey | None,
    passphrase: bytes | None,
    *,
    exclusive: bool,
) -> None:
    """The certificates and chain, and the intermediate key when it is a file
    (``intermediate_key`` None: it is on the token, nothing to write)."""
    files.write_file(paths.root_cert, files.pem(root), mode=files.PUBLIC_FILE, exclusive=exclusive)
    # The key goes first: a reader that sees the new certificate always finds its key.
    if intermediate_key is not None:
        assert isinstance(paths.intermediate_key, Path)
        write_key(paths.intermediate_key, intermediate_key, passphrase, exclusive=exclusive)
    files.write_file(
        paths.intermediate_cert,
        files.pem(intermediate),
        mode=files.PUBLIC_FILE,
        exclusive=exclusive,
    )
    files.write_file(
        paths.chain, files.pem(intermediate, root), mode=files.PUBLIC_FILE, exclusive=exclusive
    )


def check_hierarchy(
    root: x509.Certificate,
    intermediate: x509.Certificate,
    intermediate_key: PublicKey,
    now: datetime,
    names: tuple[str, str, str] = (
        "root certificate",
        "intermediate certificate",
        "intermediate key",
    ),
) -> None:
    """Raise PkiError naming the first thing wrong with a root/intermediate/key triple;
    ``intermediate_key`` is the public half of the key that is to sign (a file's, or a
    token key's)."""
    root_name, inter_name, key_name = names
    _check_ca(root, root_name, now)
    _check_ca(intermediate, inter_name, now)
    try:
        root.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise PkiError(f"{root_name} is not self-signed: it is not a root") from None
    if same_key(intermediate_key, root.public_key()) or intermediate == root:  # type: ignore[arg-type]
        raise PkiError(
            f"{inter_name} is the root itself: the online intermediate must have "
            "its own key, so that the root key can stay offline"
        )
    try:
        intermediate.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise PkiError(f"{inter_name} is not signed by {root_name}") from None
    if not same_key(intermediate_key, intermediate.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"{key_name} does not match {inter_name}")


def _check_ca(cert: x509.Certificate, name: str, now: datetime) -> None:
    if cert.not_valid_after_utc <= now:
        raise PkiError(f"{name} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if cert.not_valid_before_utc > now:
        raise PkiError(f"{name} is not valid before {cert.not_valid_before_utc:%Y-%m-%d} UTC")
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise PkiError(f"{name} is not a CA certificate (basicConstraints CA:TRUE is missing)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise PkiError(f"{name} has no keyUsage extension (needs keyCertSign)") from None
    if not usage.key_cert_sign:
        raise PkiError(f"{name} may not sign certificates (keyUsage lacks keyCertSign)")
    if not cert.subject.rfc4514_string():
        raise PkiError(f"{name} has an empty subject")


def import_hierarchy(
    *,
    root_cert_path: Path,
    intermediate_cert_path: Path,
    intermediate_key: KeyLocation,
    passphrase: bytes | None,
    paths: HierarchyFiles,
    new_passphrase: bytes | None,
    now: datetime,
) -> tuple[x509.Certificate, x509.Certificate]:
    """Adopt a root/intermediate made elsewhere (the guide's openssl commands), after checking it.

    A key file is re-written 0600 to ``paths.intermediate_key`` (encrypted with
    `new_passphrase` if given); a key on a token (``intermediate_key`` a URI, with
    ``paths.pkcs11_module``) stays there, checked to be the certificate's, and no key
    file is read or written. The root key is never asked for.
    """
    _refuse_existing(*paths.online())
    root = files.load_certificate(root_cert_path, "root certificate")
    intermediate = files.load_certificate(intermediate_cert_path, "intermediate certificate")
    if isinstance(intermediate_key, Pkcs11Uri):
        signer = open_token_signer(intermediate_key, paths.pkcs11_module, intermediate)
        key = IntermediateKey(signer.public_key, uri=intermediate_key)
    else:
        key = IntermediateKey.of(load_key(intermediate_key, passphrase, "intermediate key"))
    check_hierarchy(
        root,
        intermediate,
        key.public_key,
        now,
        (str(root_cert_path), str(intermediate_cert_path), str(intermediate_key)),
    )
    with _restored_on_failure(*paths.online()):  # none there before
        _write_online_files(paths, root, intermediate, key.private, new_passphrase,
                            exclusive=True)
    return root, intermediate


def renew_intermediate(
    paths: HierarchyFiles,
    *,
    root_passphrase: bytes,
    intermediate_passphrase: bytes | None,
    now: datetime,
    keep_old_key_until: datetime,
    validity: timedelta = INTERMEDIATE_VALIDITY,
    key_type: KeyType | None = None,
    constraints: x509.NameConstraints | str | None = "keep",
    key_uri: Pkcs11Uri | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> x509.Certificate:
    """Sign a new intermediate (new key, same subject) with the root. ``step`` is told
    each long step as it starts (`acme-ca intermediate renew`'s progress).

    Its name constraints are the old intermediate's unless `constraints` gives new
    ones (None: none at all). The new key is made where the current one is (its file,
    or its token), or on the token ``key_uri`` names (with ``paths.pkcs11_module``),
    before the root key is read: a token that cannot be used stops the renewal first.

    The old certificate is kept under ca/archive/ (the chain of what it signed), and
    its key until `keep_old_key_until` (for CRLs of what it signed; pki/archive.py): a
    key file is copied there, a key on a token stays on it and the archive names it
    (its URI pinned to its CKA_ID). The new files replace the old atomically, key
    first, so a running server picks the new intermediate up on reload. When the new
    key is on a token and the old one was a file, the old file goes (its copy in the
    archive stays until its time).
    """
    root = files.load_certificate(paths.root_cert, "root certificate")
    old = files.load_certificate(paths.intermediate_cert, "intermediate certificate")
    old_key = _current_key(paths, intermediate_passphrase, old)
    target = paths if key_uri is None else replace(paths, intermediate_key=key_uri)
    if constraints == "keep":
        try:
            constraints = old.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
    assert not isinstance(constraints, str)
    where = " on the token" if isinstance(target.intermediate_key, Pkcs11Uri) else ""
    step(f"Generating the new intermediate key{where}")
    new_key = new_intermediate_key(target, key_type or _same_type(old_key.public_key))
    with _discarded_on_failure(new_key, target.pkcs11_module):
        root_key = load_key(paths.root_key, root_passphrase, "root key")
        if not same_key(root_key, root.public_key()):  # type: ignore[arg-type]
            raise PkiError(f"root key {paths.root_key} does not match {paths.root_cert}")
        new = build_intermediate(
            root_cert=root,
            root_key=root_key,
            public_key=new_key.public_key,
            subject=old.subject,
            not_before=now,
            validity=validity,
            constraints=constraints,
        )
        check_hierarchy(root, new, new_key.public_key, now)
        with _restored_on_failure(*target.online(), *_archive_files(paths, old)):
            archive_intermediate(
                paths.archive_dir(), old, old_key.archived(), intermediate_passphrase,
                keep_old_key_until,
            )
            _write_online_files(target, root, new, new_key.private, intermediate_passphrase,
                                exclusive=False)
    if isinstance(paths.intermediate_key, Path) and new_key.private is None:
        paths.intermediate_key.unlink(missing_ok=True)  # now on the token; archived above
    return new


def _current_key(
    paths: HierarchyFiles, passphrase: bytes | None, certificate: x509.Certificate
) -> IntermediateKey:
    """The intermediate key in use, checked against its certificate: read from its file,
    or found on its token (and named by its URI pinned to its CKA_ID)."""
    location = paths.intermediate_key
    if isinstance(location, Pkcs11Uri):
        signer = open_token_signer(location, paths.pkcs11_module, certificate)
        return IntermediateKey(signer.public_key, uri=signer.pinned_uri())
    key = IntermediateKey.of(load_key(location, passphrase, "intermediate key"))
    if not same_key(key.public_key, certificate.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"intermediate key {location} does not match {paths.intermediate_cert}")
    return key


def _same_type(old: PublicKey) -> KeyType:
    """A key type like ``old``'s, never weaker."""
    if isinstance(old, ec.EllipticCurvePublicKey):
        return KeyType.EC_P384 if old.curve.key_size >= 384 else KeyType.EC_P256
    size = old.key_size  # type: ignore[union-attr]
    return KeyType(f"rsa{2048 if size <= 2048 else 3072 if size <= 3072 else 4096}")
