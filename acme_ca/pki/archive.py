"""The archive of replaced intermediates: what `acme-ca intermediate renew` keeps.

    ca/archive/intermediate-ca.<serial>.crt                 public; kept for good
    ca/archive/intermediate-ca.<serial>.key                 0600; kept for a while, then destroyed
    ca/archive/intermediate-ca.<serial>.key-uri             0600; instead of .key when the key
                                                            is on a PKCS#11 token: where it is
    ca/archive/intermediate-ca.<serial>.key-destroy-after   when: one RFC 3339 line

The certificate is the chain of every certificate the old intermediate signed (the
server serves each with the intermediate that signed it) and, later, the issuer of
their CRLs. The key is needed only to sign those CRLs, so only while a certificate it
signed can be unexpired: `renew` records the time after which no such certificate
can be left if policy held (the renewal time plus the longest leaf lifetime, computed
by the caller); `serve` destroys the key once that time has passed and its store
knows of no certificate from it that ends later (authority/archived_keys.py).

A key on a token (pki/token.py) never leaves it: the archive holds one line instead,
the key's RFC 7512 URI pinned to its CKA_ID (``id``: a newer key may carry the same
label), never with a PIN value (a ``pin-source`` file is named, as in the
configuration); destroying it removes the key pair from the token.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.keys import PrivateKey, PublicKey, parse_key, same_key, write_key
from acme_ca.pki.token import destroy_token_key, open_token_signer

ARCHIVE = "archive"
PREFIX = "intermediate-ca."
DEADLINE_SUFFIX = ".key-destroy-after"
URI_SUFFIX = ".key-uri"
MAX_ARCHIVED = 64 * 1024  # an RSA-16384 key in PEM is 13 KB; a URI, a line


def archive_dir(intermediate_cert: Path) -> Path:
    """Where the intermediates replaced by `intermediate_cert` are kept."""
    return intermediate_cert.parent / ARCHIVE


@dataclass(frozen=True, slots=True)
class ArchivedIntermediate:
    certificate: x509.Certificate
    cert_path: Path  # .../intermediate-ca.<serial>.crt

    @property
    def key_path(self) -> Path:
        return self.cert_path.with_suffix(".key")

    @property
    def key_uri_path(self) -> Path:
        """Where a key kept on a token is named (instead of ``key_path``)."""
        return self.cert_path.with_suffix(URI_SUFFIX)

    @property
    def deadline_path(self) -> Path:
        return self.cert_path.with_suffix(DEADLINE_SUFFIX)

    @property
    def on_token(self) -> bool:
        """Whether its key is kept on a token (the archive names it) rather than in a file."""
        return _present(self.key_uri_path)

    @property
    def held_at(self) -> Path:
        """The file that holds the key, or names it on its token."""
        return self.key_uri_path if self.on_token else self.key_path

    def has_key(self) -> bool:
        return self.key_path.exists() or self.key_uri_path.exists()

    def destroy_after(self, default_retention: timedelta) -> datetime:
        """When the key may go: the time `renew` recorded; for a key archived before
        times were recorded, the key file's modification time (when `renew` wrote it)
        plus `default_retention`."""
        try:
            text = self.deadline_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            try:
                written = datetime.fromtimestamp(self.held_at.stat().st_mtime, UTC)
            except OSError as exc:
                raise PkiError(f"cannot read {self.held_at}: {exc.strerror}") from None
            return written + default_retention
        except (OSError, UnicodeDecodeError) as exc:
            raise PkiError(f"cannot read {self.deadline_path}: {exc}") from None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise PkiError(f"{self.deadline_path} does not hold an RFC 3339 time: {text!r}")
        return moment


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def archived_at(directory: Path, certificate: x509.Certificate) -> ArchivedIntermediate:
    """Where ``archive_intermediate`` keeps ``certificate`` in ``directory``."""
    return ArchivedIntermediate(
        certificate, directory / f"{PREFIX}{certificate.serial_number:x}.crt")


def archive_intermediate(
    directory: Path,
    certificate: x509.Certificate,
    key: PrivateKey | Pkcs11Uri,
    passphrase: bytes | None,
    destroy_after: datetime,
) -> ArchivedIntermediate:
    """Keep a replaced intermediate: its certificate, its key (0600, encrypted with
    `passphrase` if given) or, for a key on a token, its URI (pinned to its CKA_ID;
    0600, no PIN value), and the time after which the key may be destroyed."""
    archived = archived_at(directory, certificate)
    files.write_file(archived.cert_path, files.pem(certificate), mode=files.PUBLIC_FILE)
    files.write_file(
        archived.deadline_path,
        destroy_after.astimezone(UTC).isoformat(timespec="seconds").encode() + b"\n",
        mode=files.PUBLIC_FILE,
    )
    if isinstance(key, Pkcs11Uri):
        if key.object_id is None:
            raise PkiError(f"{key} names no CKA_ID (id=): the archive must name one key")
        line = str(replace(key, pin_value=None))  # str() never shows one; doubly sure
        files.write_file(archived.key_uri_path, line.encode() + b"\n", mode=files.PRIVATE_FILE)
    else:
        write_key(archived.key_path, key, passphrase, exclusive=False)
    return archived


def load_archive(directory: Path) -> list[ArchivedIntermediate]:
    """Every archived intermediate certificate, oldest first; none if no archive."""
    if not directory.is_dir():
        return []
    found = [
        ArchivedIntermediate(files.load_certificate(path, "archived intermediate"), path)
        for path in sorted(directory.glob(f"{PREFIX}*.crt"))
    ]
    return sorted(found, key=lambda a: a.certificate.not_valid_before_utc)


def read_key(archived: ArchivedIntermediate, passphrase: bytes | None) -> PrivateKey:
    """The archived intermediate's key, read as `destroy_key` opens it: never through a
    symbolic link (a link planted in the archive could make the server read any key
    file), and only from a regular file. PkiError says why not."""
    path = archived.key_path
    return parse_key(_read_archived(path), passphrase, f"archived intermediate key {path}")


def read_key_uri(archived: ArchivedIntermediate, pin_from: Pkcs11Uri | None = None) -> Pkcs11Uri:
    """Where the archived intermediate's key is on its token, read as ``read_key`` reads
    a key file (no symbolic link, a regular file). A URI that says nothing of its PIN
    (the configured one gave it as a ``pin-value``, never archived) logs in with
    ``pin_from``'s (the configured [ca] intermediate_key: the same token). PkiError
    says why not, and for a URI not pinned to one key (no ``id``)."""
    path = archived.key_uri_path
    try:
        text = _read_archived(path).decode("utf-8").strip()
        uri = Pkcs11Uri.parse(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PkiError(f"{path} does not hold a PKCS#11 URI: {exc}") from None
    if uri.object_id is None:
        raise PkiError(f"{path} names no CKA_ID (id=): it could name a key in use")
    if uri.pin_source is None and uri.pin_value is None and pin_from is not None:
        uri = replace(uri, pin_source=pin_from.pin_source, pin_value=pin_from.pin_value)
    return uri


def _read_archived(path: Path) -> bytes:
    """The bytes of an archive file: never through a symbolic link, a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PkiError(f"{path} is a symbolic link, not the archived key itself") from None
        raise PkiError(f"cannot open {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as archived:
        if not stat.S_ISREG(os.fstat(archived.fileno()).st_mode):
            raise PkiError(f"{path} is not a regular file")
        data = archived.read(MAX_ARCHIVED + 1)
    if len(data) > MAX_ARCHIVED:
        raise PkiError(f"{path} is larger than {MAX_ARCHIVED} bytes: not an archived key")
    return data


def destroy_key(
    archived: ArchivedIntermediate,
    passphrase: bytes | None,
    current: PublicKey,
    *,
    module: Path | None = None,
    pin_from: Pkcs11Uri | None = None,
) -> None:
    """A key on a token: removed from it (``_destroy_token_key``). A key file: overwritten
    with random bytes, flushed, and unlinked (and its deadline). The certificate stays.
    On copy-on-write or flash storage the overwrite may land elsewhere; the unlink is
    what is certain.

    Only the archived intermediate's own key is overwritten, as checked on the open
    file: not a symbolic link (never followed), a regular file with no other name (a
    hard link may be the live key), holding the private key of the archived certificate
    and not that of `current` (the intermediate the server signs with). Otherwise
    PkiError says why and the file is left alone. `renew` encrypts the key with the
    intermediate passphrase: without the right `passphrase` nothing proves which key
    the file holds, so it stays too.
    """
    if archived.on_token:
        _destroy_token_key(archived, current, module, pin_from)
        return
    path = archived.key_path
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PkiError(f"{path} is a symbolic link, not the archived key itself") from None
        raise PkiError(f"cannot open {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "r+b") as key_file:
            opened = os.fstat(key_file.fileno())
            if not stat.S_ISREG(opened.st_mode):
                raise PkiError(f"{path} is not a regular file")
            if opened.st_nlink != 1:
                raise PkiError(
                    f"{path} has {opened.st_nlink} names (a hard link): another may be a key in use"
                )
            key = parse_key(key_file.read(), passphrase, str(path))
            if not same_key(key, archived.certificate.public_key()):  # type: ignore[arg-type]
                raise PkiError(f"{path} does not match {archived.cert_path}")
            if same_key(key, current):
                raise PkiError(f"{path} is the key of the intermediate this server signs with")
            key_file.seek(0)
            key_file.write(os.urandom(opened.st_size))
            key_file.flush()
            os.fsync(key_file.fileno())
        path.unlink()  # a name only: whatever it names now, no other file's bytes change
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PkiError(f"cannot destroy {path}: {exc.strerror}") from None
    with contextlib.suppress(FileNotFoundError):
        archived.deadline_path.unlink()


def _destroy_token_key(
    archived: ArchivedIntermediate,
    current: PublicKey,
    module: Path | None,
    pin_from: Pkcs11Uri | None,
) -> None:
    """Remove an archived intermediate's key pair from its token (``module``: [ca]
    pkcs11_module unless the URI names one), then the file that named it and the
    deadline. The checks of a key file that apply to a key the archive only names: the
    name is read as ``read_key_uri`` reads it (no symbolic link followed, a regular
    file), pinned to one key (its CKA_ID), that key is the archived certificate's (the
    token says so: ``open_token_signer``) and not `current`'s, and only that key's
    objects are destroyed (another key may share its CKA_ID). A second name (hard link)
    of the file is harmless here: it holds no key, and the token object goes once.
    The token key is destroyed by the token (PKCS#11 C_DestroyObject): no copy of it
    was ever outside."""
    uri = read_key_uri(archived, pin_from)
    if same_key(archived.certificate.public_key(), current):  # type: ignore[arg-type]
        raise PkiError(f"{uri} is the key of the intermediate this server signs with")
    open_token_signer(uri, module, archived.certificate)  # PkiError unless it is that key
    destroy_token_key(uri, module, archived.certificate.public_key())  # type: ignore[arg-type]
    for path in (archived.key_uri_path, archived.deadline_path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
