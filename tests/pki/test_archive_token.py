"""Destroying an archived intermediate's key on its token (pki/archive.py): only the
objects of the archived certificate's key go, never another key that the archive's
``.key-uri`` also names. SoftHSM2 is the token (tests/softhsm.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.archive import archive_intermediate, destroy_key, load_archive
from acme_ca.pki.keys import KeyType
from acme_ca.pki.token import generate_token_key, open_token_signer
from tests.pki.token_helpers import certificate_for, raw_session, signs
from tests.softhsm import SoftHsm


def test_a_current_key_sharing_the_archived_keys_id_survives(softhsm: SoftHsm,
                                                            tmp_path: Path) -> None:
    """CKA_ID is unique only by convention (PKCS#11 2.40 4.6.3: "not necessarily
    unique"): a key the operator made or imported with another tool may share the id of
    the archived key. The archive's URI then names both; the sweep destroys the
    archived certificate's key pair and leaves the current key (the one in use)."""
    label = Pkcs11Uri.parse(softhsm.uri())
    archived_public, archived_uri = generate_token_key(label, softhsm.module, KeyType.EC_P256)
    current_public, current_uri = generate_token_key(label, softhsm.module, KeyType.EC_P256)
    import pkcs11

    with raw_session(softhsm) as session:  # the current key takes the archived key's id
        for obj in session.get_objects({pkcs11.Attribute.ID: current_uri.object_id}):
            obj[pkcs11.Attribute.ID] = archived_uri.object_id
    archived_certificate = certificate_for(archived_public, "Old CA")
    current_certificate = certificate_for(current_public, "New CA")
    archive = tmp_path / "archive"
    archive.mkdir()
    archived = archive_intermediate(archive, archived_certificate, archived_uri, None,
                                    datetime.now(UTC))
    destroy_key(archived, None, current_public, module=softhsm.module, pin_from=label)

    assert not archived.key_uri_path.exists()
    assert load_archive(archive)[0].certificate == archived_certificate
    with pytest.raises(PkiError, match="is not the key of its certificate"):
        open_token_signer(archived_uri, softhsm.module, archived_certificate)
    with raw_session(softhsm) as session:  # both objects of the current key are there
        left = list(session.get_objects({pkcs11.Attribute.ID: archived_uri.object_id}))
        assert len(left) == 2
    assert signs(open_token_signer(label, softhsm.module, current_certificate))


def test_a_public_object_of_the_certificates_key_does_not_make_another_key_its(
        softhsm: SoftHsm) -> None:
    """A token whose private key under an id is not the certificate's, beside a public
    object of the certificate's key under that same id (its private half elsewhere):
    the certificate is not adopted (`init --import --intermediate-key-uri`, Issuer.load)
    with a key that cannot sign for it. The private key itself must prove it."""
    label = Pkcs11Uri.parse(softhsm.uri())
    other_public, other_uri = generate_token_key(label, softhsm.module, KeyType.EC_P256)
    elsewhere_public, elsewhere_uri = generate_token_key(label, softhsm.module,
                                                         KeyType.EC_P256)
    import pkcs11

    with raw_session(softhsm) as session:
        for obj in session.get_objects({pkcs11.Attribute.ID: other_uri.object_id,
                                        pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY}):
            obj.destroy()
        for obj in session.get_objects({pkcs11.Attribute.ID: elsewhere_uri.object_id}):
            if obj.object_class == pkcs11.ObjectClass.PRIVATE_KEY:
                obj.destroy()  # the certificate's private key is not on this token
            else:
                obj[pkcs11.Attribute.ID] = other_uri.object_id
    with pytest.raises(PkiError, match="is not the key of its certificate"):
        open_token_signer(other_uri, softhsm.module, certificate_for(elsewhere_public))
    assert signs(open_token_signer(other_uri, softhsm.module, certificate_for(other_public)))


def test_a_huge_key_uri_is_not_read_whole(tmp_path: Path) -> None:
    """A .key-uri (or key file) in the archive is read at every load and sweep: a huge
    one is refused after its first 64 KiB, not read into memory whole."""
    from acme_ca.pki.archive import read_key_uri

    archived = archive_intermediate(
        tmp_path, certificate_for(ec.generate_private_key(ec.SECP256R1()).public_key()),
        Pkcs11Uri.parse("pkcs11:token=t;object=o;id=%01?pin-source=file:/nonexistent"),
        None, datetime.now(UTC))
    with archived.key_uri_path.open("r+b") as named:
        named.truncate(16 * 1024 * 1024)  # sparse
    with pytest.raises(PkiError, match="larger than 65536 bytes"):
        read_key_uri(archived, None)


@pytest.mark.parametrize(("named", "pin_from", "message"), [
    ("pkcs11:token=t;object=o", "pkcs11:token=t;object=k?pin-source=file:/pin",
     "names no CKA_ID"),
    ("pkcs11:token=t;object=o;id=%01", None, "no PIN to log in with"),
])
def test_a_key_uri_that_could_name_a_key_in_use_or_has_no_pin_is_refused(
    tmp_path: Path, named: str, pin_from: str | None, message: str
) -> None:
    """A .key-uri without an id (RFC 7512 2.3) could name the key in use: refused, as
    one naming a token key while [ca] intermediate_key is a file (no PIN to send)."""
    from acme_ca.pki.archive import read_key_uri

    archived = archive_intermediate(
        tmp_path, certificate_for(ec.generate_private_key(ec.SECP256R1()).public_key()),
        Pkcs11Uri.parse("pkcs11:token=t;object=o;id=%01"), None, datetime.now(UTC))
    archived.key_uri_path.write_text(named + "\n")  # archive_intermediate names one key
    with pytest.raises(PkiError, match=message):
        read_key_uri(archived, Pkcs11Uri.parse(pin_from) if pin_from else None)
