"""Destroying an archived intermediate's key on its token (pki/archive.py): only the
objects of the archived certificate's key go, never another key that the archive's
``.key-uri`` also names. SoftHSM2 is the token (tests/softhsm.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.archive import archive_intermediate, destroy_key, load_archive
from acme_ca.pki.keys import KeyType
from acme_ca.pki.token import generate_token_key, open_token_signer
from tests.pki.test_token import certificate_for, raw_session, signs
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
    destroy_key(archived, None, current_public, module=softhsm.module)

    assert not archived.key_uri_path.exists()
    assert load_archive(archive)[0].certificate == archived_certificate
    with pytest.raises(PkiError):
        open_token_signer(archived_uri, softhsm.module, archived_certificate)
    with raw_session(softhsm) as session:  # both objects of the current key are there
        left = list(session.get_objects({pkcs11.Attribute.ID: archived_uri.object_id}))
        assert len(left) == 2
    assert signs(open_token_signer(label, softhsm.module, current_certificate))
