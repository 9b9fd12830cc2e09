"""The online half of the CA: the intermediate certificate and the signer of its key
(a key file, or a key on a PKCS#11 token: pki/signer.py) that sign leaves, and the
chains of every certificate the server hands out.

This is all the server loads from the hierarchy; it never sees the root key. It also
knows the intermediates the current one replaced (their certificates in ca/archive/),
so that a certificate is always served with the intermediate that signed it, before
and after `acme-ca intermediate renew`: `chains_for` is the one place that picks a
chain by the issuer fingerprint a certificate record carries. Their keys, while kept,
are read only when `serve` asks: they sign those intermediates' CRLs (`crl_signers`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.archive import (
    ArchivedIntermediate,
    archive_dir,
    load_archive,
    read_key,
    read_key_uri,
)
from acme_ca.pki.crl import CrlSigner
from acme_ca.pki.hierarchy import fingerprint
from acme_ca.pki.keys import same_key
from acme_ca.pki.profiles import LeafRequest, build_leaf
from acme_ca.pki.publication import Publication
from acme_ca.pki.signer import FileSigner, Signer, load_signer


@dataclass(frozen=True, slots=True)
class Issuer:
    certificate: x509.Certificate
    signer: Signer  # the intermediate's key: a file, or on a token ([ca] intermediate_key)
    chain: tuple[x509.Certificate, ...]  # the intermediate, then up to the root
    fingerprint: str  # hex SHA-256 of the intermediate certificate
    # Other chains to offer after a leaf (e.g. the intermediate cross-signed by another
    # root): each starts with a certificate for the intermediate's own name and key.
    alternates: tuple[tuple[x509.Certificate, ...], ...] = ()
    # The intermediates this one replaced, by fingerprint: the chain served after a leaf
    # one of them signed (the archived intermediate, then what this chain has above it).
    earlier: Mapping[str, tuple[x509.Certificate, ...]] = field(default_factory=dict)
    # Where its leaves say relying parties find its CRL, OCSP and certificate
    # ([revocation] base_url); None: nothing published (offline tools, older tests).
    publication: Publication | None = None
    # The archived intermediates whose keys are still kept, with those keys: they sign
    # the CRLs of what they issued (``crl_signers``). Read at load when asked (serve),
    # with the intermediate passphrase `renew` encrypted them with, or opened on their
    # token (``_archived_signer``).
    archived_signers: tuple[CrlSigner, ...] = ()
    # Why an archived key could not be read (wrong passphrase, damaged file, a token
    # that does not hold it), by the fingerprint of its intermediate: that CRL is not
    # signed. `serve` refuses to start while such an intermediate has unexpired
    # certificates (authority/crls.py's ``unsigned_crl_problem``).
    unreadable: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        cert_path: Path,
        key_location: Path | Pkcs11Uri,
        chain_path: Path,
        passphrase: bytes | None,
        now: datetime,
        alternate_paths: Sequence[Path] = (),
        publication: Publication | None = None,
        *,
        archived_keys: bool = False,
        pkcs11_module: Path | None = None,
    ) -> Issuer:
        """Load and check the intermediate: key matches, CA, valid now, chain starts with it;
        and the certificates of the intermediates it replaced (archive_dir), with
        ``archived_keys`` the keys of those whose key is still kept. ``key_location`` is
        a key file (``passphrase`` decrypts it) or a PKCS#11 URI (``pkcs11_module``:
        [ca] pkcs11_module), opened by ``signer.load_signer``."""
        cert = files.load_certificate(cert_path, "intermediate certificate")
        signer = load_signer(key_location, passphrase, cert, pkcs11_module)
        if cert.not_valid_after_utc <= now:
            raise PkiError(
                f"intermediate certificate {cert_path} expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d} UTC: renew it with "
                "`acme-ca intermediate renew`"
            )
        chain = tuple(files.load_certificates(chain_path, "CA chain"))
        if chain[0] != cert:
            raise PkiError(f"CA chain {chain_path} does not start with {cert_path}")
        alternates = tuple(_alternate(cert, path) for path in alternate_paths)
        archive = load_archive(archive_dir(cert_path))
        earlier = _earlier(chain, archive)
        token = pkcs11_module, key_location if isinstance(key_location, Pkcs11Uri) else None
        signers, unreadable = (_archived_signers(archive, earlier, passphrase, token)
                               if archived_keys else ((), {}))
        return cls(cert, signer, chain, fingerprint(cert), alternates, earlier, publication,
                   signers, unreadable)

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1]

    def issue(self, request: LeafRequest) -> x509.Certificate:
        """Sign a leaf; with a ``publication``, it names this intermediate's CRL, its
        certificate (caIssuers) and, when OCSP is on, the responder. It blocks while
        the key signs: the server calls it ``off_loop``."""
        if self.publication is not None:
            request = replace(
                request,
                crl_url=self.publication.crl_url(self.fingerprint),
                ocsp_url=self.publication.ocsp_url(),
                ca_issuers_url=self.publication.issuer_url(self.fingerprint),
            )
        return build_leaf(self.certificate, self.signer, request)

    def crl_signers(self) -> Iterator[CrlSigner]:
        """The intermediates that sign CRLs now: this one, then each archived one whose
        key is still kept (authority/archived_keys.py destroys it once nothing it
        signed can be unexpired; a key destroyed since the load signs no more)."""
        yield CrlSigner(self.certificate, self.fingerprint, self.signer)
        for signer in self.archived_signers:
            if signer.fingerprint != self.fingerprint and not signer.retired():
                yield signer

    def chains_for(self, signed_by: str) -> tuple[tuple[x509.Certificate, ...], ...]:
        """The chains (without the root) to serve after a leaf that the intermediate with
        fingerprint `signed_by` signed: the default first, then the alternates (the
        current intermediate's only). PkiError if no such intermediate is known."""
        if signed_by == self.fingerprint:
            return (self.chain[:-1], *self.alternates)
        if signed_by in self.earlier:
            return (self.earlier[signed_by],)
        raise PkiError(
            f"the intermediate {signed_by[:16]} that signed this certificate is neither the "
            "current one nor archived: restore its certificate to the archive"
        )

    def chain_pems(self, leaf: x509.Certificate, signed_by: str) -> tuple[bytes, ...]:
        """PEM of the leaf and each of its chains (`chains_for`)."""
        return tuple(files.pem(leaf, *chain) for chain in self.chains_for(signed_by))

    def chain_pem(self, leaf: x509.Certificate | None = None) -> bytes:
        """PEM of the leaf (if given) and the intermediate(s) a TLS server presents:
        the default chain, without the root."""
        return files.pem(*([leaf] if leaf is not None else []), *self.chain[:-1])


def _alternate(intermediate: x509.Certificate, path: Path) -> tuple[x509.Certificate, ...]:
    certs = tuple(files.load_certificates(path, "alternate chain"))
    first = certs[0]
    if first.subject != intermediate.subject or first.public_key() != intermediate.public_key():
        raise PkiError(
            f"alternate chain {path} does not start with a certificate for the "
            "intermediate's name and key"
        )
    return certs


def _archived_signers(
    archive: Sequence[ArchivedIntermediate],
    earlier: Mapping[str, tuple[x509.Certificate, ...]],
    passphrase: bytes | None,
    token: tuple[Path | None, Pkcs11Uri | None],
) -> tuple[tuple[CrlSigner, ...], dict[str, str]]:
    """The archived intermediates whose key is still kept, each with the signer of its
    key (``_archived_signer``); and why each key that could not be read or does not
    match was left out, by fingerprint.
    Only a CA certificate ``_earlier`` checked (signed by the CA above the current
    intermediate) has its key read, never through a symbolic link: a certificate and
    key planted in the archive are not read. ``token``: [ca] pkcs11_module and, when it
    is a URI, [ca] intermediate_key, for the keys the archive names on a token."""
    signers, unreadable = [], {}
    for item in archive:
        signed_by = fingerprint(item.certificate)
        if not item.has_key() and not item.key_path.is_symlink() and not item.on_token:
            continue
        try:
            if signed_by not in earlier or not _is_ca(item.certificate):
                raise PkiError(f"archived intermediate {item.cert_path} is not a CA "
                               "certificate of this hierarchy: its key is not read")
            signer = _archived_signer(item, passphrase, *token)
        except PkiError as exc:
            unreadable[signed_by] = str(exc)
            continue
        signers.append(CrlSigner(item.certificate, signed_by, signer, item.held_at))
    return tuple(signers), unreadable


def _archived_signer(item: ArchivedIntermediate, passphrase: bytes | None,
                     module: Path | None, pin_from: Pkcs11Uri | None) -> Signer:
    """The signer of an archived intermediate's key, checked against its certificate: its
    key file, or the token key its ``.key-uri`` names (``module``, and ``pin_from``'s PIN
    on ``pin_from``'s token only: ``archive.read_key_uri``); PkiError says why it cannot
    sign."""
    if item.on_token:
        return load_signer(read_key_uri(item, pin_from), None, item.certificate, module,
                           "archived intermediate key")
    key = read_key(item, passphrase)
    if not same_key(key, item.certificate.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"archived intermediate key {item.key_path} does not match "
                       f"{item.cert_path}")
    return FileSigner(key, item.key_path)


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _earlier(
    chain: tuple[x509.Certificate, ...], archived: Sequence[ArchivedIntermediate]
) -> dict[str, tuple[x509.Certificate, ...]]:
    """The chain of each archived intermediate: it, then what the current chain has above
    the current intermediate but the root. Each must have been signed by the same CA as
    the current one; anything else in the archive is refused by name."""
    if not archived:
        return {}
    if len(chain) < 2:
        raise PkiError("the CA chain holds only the intermediate: it must end with the root")
    above = chain[1]
    earlier = {}
    for item in archived:
        try:
            item.certificate.verify_directly_issued_by(above)
        except (ValueError, TypeError, InvalidSignature):
            raise PkiError(
                f"archived intermediate {item.cert_path} was not signed by "
                f"{above.subject.rfc4514_string()}: move it out of the archive"
            ) from None
        earlier[fingerprint(item.certificate)] = (item.certificate, *chain[1:-1])
    return earlier
