"""Writing key and certificate files safely: private modes, no partial files.

Keys are written 0600 in directories made 0700. A new file is written to a
temporary name in the same directory, flushed to disk and renamed into place, so a
crash never leaves half a key; `exclusive=True` refuses to replace an existing file
(the root key is never overwritten).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.errors import PkiError

PRIVATE_FILE = 0o600
PUBLIC_FILE = 0o644
PRIVATE_DIR = 0o700


def ensure_dir(path: Path, mode: int = PRIVATE_DIR) -> None:
    """Create a directory and any missing parents, each with `mode` (whatever the umask).

    Directories that already exist keep their mode.
    """
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=mode)
            os.chmod(folder, mode)
        except FileExistsError:
            continue  # made meanwhile by another process
        except OSError as exc:
            raise PkiError(f"cannot create directory {folder}: {exc.strerror}") from None


def write_file(path: Path, data: bytes, *, mode: int, exclusive: bool = False) -> None:
    """Write `data` to `path` atomically with permissions `mode`."""
    ensure_dir(path.parent)
    if exclusive and path.exists():
        raise PkiError(f"{path} already exists; refusing to overwrite it")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # no folder to write in (a file on the way, no room)
        raise PkiError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if path appeared meanwhile
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except FileExistsError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PkiError(f"{path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PkiError(f"cannot write {path}: {exc.strerror}") from None
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise PkiError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_certificates(path: Path, what: str = "certificate file") -> list[x509.Certificate]:
    """Every certificate in a PEM file (or the one in a DER file), in file order."""
    data = read_bytes(path, what)
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise PkiError(f"{what} {path} does not hold a readable X.509 certificate") from None
    return certs


def load_certificate(path: Path, what: str = "certificate") -> x509.Certificate:
    """The first certificate in a PEM or DER file."""
    return load_certificates(path, what)[0]


def pem(*certs: x509.Certificate) -> bytes:

    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)
