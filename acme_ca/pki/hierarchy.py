"""The two-tier hierarchy on disk: create it, adopt one made with openssl, renew the intermediate.

    offline/root-ca.key        the root key: encrypted, 0600; belongs offline
    ca/root-ca.crt             public
    ca/intermediate-ca.crt     public
    ca/intermediate-ca.key     0600, optionally encrypted; the server's signing key
    ca/ca-chain.pem            intermediate, then root (as the guide's `cat`)

Only `create_hierarchy` and `renew_intermediate` touch the root key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.errors import PkiError
from acme_ca.pki import files
from acme_ca.pki.archive import archive_dir, archive_intermediate
from acme_ca.pki.keys import KeyType, PrivateKey, generate_key, load_key, same_key, write_key
from acme_ca.pki.profiles import (
    INTERMEDIATE_VALIDITY,
    ROOT_VALIDITY,
    IpNetwork,
    build_intermediate,
    build_root,
    ca_name,
    name_constraints,
)


@dataclass(frozen=True, slots=True)
class HierarchyFiles:
    root_key: Path
    root_cert: Path
    intermediate_cert: Path
    intermediate_key: Path
    chain: Path

    def archive_dir(self) -> Path:
        return archive_dir(self.intermediate_cert)


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
    """Make a new root and intermediate and write the five files; refuse to overwrite any.
    ``step`` is told each long step as it starts (`acme-ca init`'s progress)."""
    if not root_passphrase:
        raise PkiError("the root key needs a passphrase")
    _refuse_existing(
        paths.root_key,
        paths.root_cert,
        paths.intermediate_cert,
        paths.intermediate_key,
        paths.chain,
    )
    step(f"Generating the root key ({spec.root_key_type})")
    root_key = generate_key(spec.root_key_type)
    root = build_root(
        root_key,
        ca_name(spec.root_common_name, spec.organization, spec.country),
        now,
        spec.root_validity,
    )
    step(f"Generating the intermediate key ({spec.intermediate_key_type})")
    intermediate_key = generate_key(spec.intermediate_key_type)
    intermediate = build_intermediate(
        root_cert=root,
        root_key=root_key,
        public_key=intermediate_key.public_key(),
        subject=ca_name(spec.intermediate_common_name, spec.organization, spec.country),
        not_before=now,
        validity=spec.intermediate_validity,
        constraints=(
            name_constraints(spec.permitted_domains, spec.permitted_networks)
            if spec.permitted_domains
            else None
        ),
    )
    check_hierarchy(root, intermediate, intermediate_key, now)
    step("Writing the keys")
    write_key(paths.root_key, root_key, root_passphrase, exclusive=True)
    _write_online_files(
        paths, root, intermediate, intermediate_key, intermediate_passphrase, exclusive=True
    )
    return root, intermediate


def _refuse_existing(*paths: Path) -> None:
    """Check every target before writing any, so a refusal never leaves half a CA."""
    existing = [p for p in paths if p.exists()]
    if existing:
        raise PkiError(f"{existing[0]} already exists; refusing to overwrite a CA")


def _write_online_files(
    paths: HierarchyFiles,
    root: x509.Certificate,
    intermediate: x509.Certificate,
    intermediate_key: PrivateKey,
    passphrase: bytes | None,
    *,
    exclusive: bool,
) -> None:
    files.write_file(paths.root_cert, files.pem(root), mode=files.PUBLIC_FILE, exclusive=exclusive)
    # The key goes first: a reader that sees the new certificate always finds its key.
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
    intermediate_key: PrivateKey,
    now: datetime,
    names: tuple[str, str, str] = (
        "root certificate",
        "intermediate certificate",
        "intermediate key",
    ),
) -> None:
    """Raise PkiError naming the first thing wrong with a root/intermediate/key triple."""
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
    intermediate_key_path: Path,
    passphrase: bytes | None,
    paths: HierarchyFiles,
    new_passphrase: bytes | None,
    now: datetime,
) -> tuple[x509.Certificate, x509.Certificate]:
    """Adopt a root/intermediate made elsewhere (the guide's openssl commands), after checking it.

    The intermediate key is re-written 0600 (encrypted with `new_passphrase` if given);
    the root key is never asked for.
    """
    _refuse_existing(paths.root_cert, paths.intermediate_cert, paths.intermediate_key, paths.chain)
    root = files.load_certificate(root_cert_path, "root certificate")
    intermediate = files.load_certificate(intermediate_cert_path, "intermediate certificate")
    key = load_key(intermediate_key_path, passphrase, "intermediate key")
    check_hierarchy(
        root,
        intermediate,
        key,
        now,
        (str(root_cert_path), str(intermediate_cert_path), str(intermediate_key_path)),
    )
    _write_online_files(paths, root, intermediate, key, new_passphrase, exclusive=True)
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
    step: Callable[[str], None] = lambda _: None,
) -> x509.Certificate:
    """Sign a new intermediate (new key, same subject) with the root. ``step`` is told
    each long step as it starts (`acme-ca intermediate renew`'s progress).

    Its name constraints are the old intermediate's unless `constraints` gives new
    ones (None: none at all).

    The old certificate is kept under ca/archive/ (the chain of what it signed), and
    its key until `keep_old_key_until` (for CRLs of what it signed; pki/archive.py);
    the new files replace the old atomically, key first, so a running server picks
    the new intermediate up on reload.
    """
    root = files.load_certificate(paths.root_cert, "root certificate")
    root_key = load_key(paths.root_key, root_passphrase, "root key")
    if not same_key(root_key, root.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"root key {paths.root_key} does not match {paths.root_cert}")
    old = files.load_certificate(paths.intermediate_cert, "intermediate certificate")
    old_key = load_key(paths.intermediate_key, intermediate_passphrase, "intermediate key")
    if constraints == "keep":
        try:
            constraints = old.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
    assert not isinstance(constraints, str)
    step("Generating the new intermediate key")
    new_key = generate_key(key_type) if key_type else _same_type_key(old_key)
    new = build_intermediate(
        root_cert=root,
        root_key=root_key,
        public_key=new_key.public_key(),
        subject=old.subject,
        not_before=now,
        validity=validity,
        constraints=constraints,
    )
    check_hierarchy(root, new, new_key, now)
    archive_intermediate(
        paths.archive_dir(), old, old_key, intermediate_passphrase, keep_old_key_until
    )
    _write_online_files(paths, root, new, new_key, intermediate_passphrase, exclusive=False)
    return new


def _same_type_key(old: PrivateKey) -> PrivateKey:

    if isinstance(old, ec.EllipticCurvePrivateKey):
        return generate_key(KeyType.EC_P384 if old.curve.key_size >= 384 else KeyType.EC_P256)
    size = 2048 if old.key_size <= 2048 else 3072 if old.key_size <= 3072 else 4096  # never weaker
    return generate_key(KeyType(f"rsa{size}"))
