"""What the token tests share (test_token.py, test_token_runtime.py, test_token_logins.py,
test_archive_token.py): keys made on the test's SoftHSM2 token (tests/softhsm.py),
certificates of them signed by a key file, a raw python-pkcs11 session to look at the
token's objects, and the check that an error is one line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.keys import KeyType, PublicKey
from acme_ca.pki.signer import Signer, verify_signature
from acme_ca.pki.token import TokenSigner, generate_token_key, open_token_signer
from acme_ca.pki.token_session import close_modules
from tests.softhsm import SoftHsm

FILE_ROOT = ec.generate_private_key(ec.SECP384R1())


def uri_of(softhsm: SoftHsm, obj: str = "intermediate", **query: str) -> Pkcs11Uri:
    text = softhsm.uri(obj)
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return Pkcs11Uri.parse(text + extra)


def certificate_for(public_key: PublicKey, cn: str = "Token CA") -> x509.Certificate:
    """A CA certificate of ``public_key``, signed by a key file."""
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(FILE_ROOT, hashes.SHA384()))


def signer_for(softhsm: SoftHsm, key_type: KeyType = KeyType.EC_P256,
               obj: str = "intermediate") -> tuple[TokenSigner, Pkcs11Uri]:
    """A new key on the token, and the signer of a certificate of it."""
    public_key, pinned = generate_token_key(uri_of(softhsm, obj), softhsm.module, key_type)
    return open_token_signer(uri_of(softhsm, obj), softhsm.module,
                             certificate_for(public_key)), pinned


def signs(signer: Signer, data: bytes = b"to be signed") -> bool:
    return verify_signature(signer.public_key, signer.sign(data), data, signer.hash_algorithm)


@contextmanager
def raw_session(softhsm: SoftHsm) -> Iterator[Any]:
    """A session of the test's own through python-pkcs11, to look at what the token
    holds (the module's sessions are closed first: login is per application)."""
    import pkcs11

    close_modules()
    lib = pkcs11.lib(str(softhsm.module))
    session = lib.get_token(token_label=softhsm.label).open(user_pin=softhsm.pin, rw=True)
    try:
        yield session
    finally:
        session.close()
        close_modules()
        lib.finalize()


def one_line_error(call: Callable[[], object], match: str) -> str:
    with pytest.raises(PkiError, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)
    return str(caught.value)
