"""Keys on a PKCS#11 token (pki/token.py), against SoftHSM2: a real token of the test's
own (tests/softhsm.py), never a mock of one. Keys made on the token and their
signatures (RFC 5280 4.1.1.3; PKCS#11 2.40 base 4.9: never extractable), what stops a
start with one line, and making and destroying keys. At run time (a token that fails
and comes back, forks, threads, a hung token): test_token_runtime.py."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.keys import KeyType, same_key
from acme_ca.pki.signer import Signer, sign_certificate, verify_signature
from acme_ca.pki.token import destroy_token_key, generate_token_key, open_token_signer
from acme_ca.pki.token_session import close_modules
from tests.pki.token_helpers import (
    certificate_for,
    one_line_error,
    raw_session,
    signer_for,
    signs,
    uri_of,
)
from tests.required import require_program
from tests.softhsm import SoftHsm

# --- keys made on the token, and signatures ---------------------------------------------


@pytest.mark.parametrize(("key_type", "hash_name"), [
    (KeyType.EC_P256, "sha256"), (KeyType.EC_P384, "sha384"), (KeyType.RSA2048, "sha256"),
])
def test_a_key_made_on_the_token_signs_and_cryptography_verifies(
        softhsm: SoftHsm, key_type: KeyType, hash_name: str) -> None:
    signer, pinned = signer_for(softhsm, key_type)
    assert isinstance(signer, Signer)
    assert signer.hash_algorithm.name == hash_name  # as keys.signature_hash: P-384 -> SHA-384
    for data in (b"", b"x", os.urandom(5000)):
        assert signs(signer, data)
    assert not verify_signature(signer.public_key, signer.sign(b"one"), b"two",
                                signer.hash_algorithm)
    assert pinned.object == "intermediate" and pinned.object_id is not None
    assert len(pinned.object_id) == 16


def test_a_certificate_signed_through_the_token_verifies_with_openssl(
        softhsm: SoftHsm, tmp_path: Path) -> None:
    """RFC 5280 4.1.1.3: the token's signature over tbsCertificate, in the DER
    sign_certificate assembles; openssl checks the chain root (self-signed on the
    token) -> leaf."""
    openssl = require_program("openssl")
    public_key, _ = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P384)
    now = datetime.now(UTC)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Token Root")])
    root_builder = (
        x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False),
                       critical=True))
    # the builder needs the certificate to find the key: a first draft by a file key
    signer = open_token_signer(uri_of(softhsm), softhsm.module, certificate_for(public_key))
    root = sign_certificate(root_builder, signer)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = sign_certificate(
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(root_name).public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.bluerobin.local")]),
                       critical=False), signer)
    (tmp_path / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(Encoding.PEM))
    result = subprocess.run([openssl, "verify", "-CAfile", str(tmp_path / "root.pem"),
                             str(tmp_path / "leaf.pem")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert leaf.signature_hash_algorithm is not None
    assert leaf.signature_hash_algorithm.name == "sha384"


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA2048])
def test_the_private_key_never_leaves_the_token(softhsm: SoftHsm, key_type: KeyType) -> None:
    """PKCS#11 2.40 base 4.9 (private key objects): sensitive and never extractable
    from its making on (CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE), and a signing key
    only: no CKA_SIGN_RECOVER (SoftHSM2 sets it unless told: with RSA that is raw
    RSA on the key), CKA_DECRYPT, CKA_UNWRAP or CKA_DERIVE."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    _, pinned = generate_token_key(uri_of(softhsm), softhsm.module, key_type)
    with raw_session(softhsm) as session:
        (private,) = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        (public,) = session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.PRIVATE] is True
        assert private[Attribute.TOKEN] is True and public[Attribute.TOKEN] is True
        assert private[Attribute.SIGN] is True
        assert private[Attribute.DECRYPT] is False and private[Attribute.DERIVE] is False
        assert private[Attribute.UNWRAP] is False and private[Attribute.SIGN_RECOVER] is False
        assert private[Attribute.ALWAYS_SENSITIVE] is True
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert public[Attribute.VERIFY] is True
        assert private[Attribute.LABEL] == public[Attribute.LABEL] == "intermediate"
        assert private[Attribute.ID] == public[Attribute.ID] == pinned.object_id
        secret = Attribute.PRIVATE_EXPONENT if key_type is KeyType.RSA2048 else Attribute.VALUE
        with pytest.raises(pkcs11.AttributeSensitive):
            private[secret]


def test_two_keys_under_one_label_the_certificate_picks(softhsm: SoftHsm) -> None:
    """A renewed intermediate's new key has the old one's label: each certificate finds
    its own key, by the public key object of the same CKA_ID."""
    old, old_uri = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    new, new_uri = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    assert old_uri.object_id != new_uri.object_id
    for public_key in (old, new):
        signer = open_token_signer(uri_of(softhsm), softhsm.module, certificate_for(public_key))
        assert same_key(signer.public_key, public_key) and signs(signer)
    pinned = open_token_signer(old_uri, softhsm.module, certificate_for(old))
    assert signs(pinned)
    one_line_error(lambda: open_token_signer(old_uri, softhsm.module, certificate_for(new)),
                   "the key that .* names is not the key of its certificate")
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    one_line_error(
        lambda: open_token_signer(uri_of(softhsm), softhsm.module, certificate_for(stranger)),
        "none of the 2 keys that .* names is the key of its certificate")


def test_without_public_objects_a_probe_signature_picks(softhsm: SoftHsm) -> None:
    from pkcs11 import Attribute, ObjectClass

    old, _ = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    new, _ = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    with raw_session(softhsm) as session:
        for public in list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})):
            public.destroy()
    for public_key in (new, old):
        signer = open_token_signer(uri_of(softhsm), softhsm.module, certificate_for(public_key))
        assert signs(signer)


def test_describe_is_the_uri_without_pin(softhsm: SoftHsm) -> None:
    public_key, _ = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    uri = Pkcs11Uri.parse(f"pkcs11:token={softhsm.label};object=intermediate"
                          f"?pin-value={softhsm.pin}")
    signer = open_token_signer(uri, softhsm.module, certificate_for(public_key))
    assert signer.describe() == f"pkcs11:token={softhsm.label};object=intermediate"


def test_the_module_may_come_from_the_uri(softhsm: SoftHsm) -> None:
    public_key, _ = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    uri = uri_of(softhsm, **{"module-path": str(softhsm.module)})
    assert signs(open_token_signer(uri, None, certificate_for(public_key)))


# --- what stops a start, with one line ---------------------------------------------------


def test_wrong_pin(softhsm: SoftHsm, tmp_path: Path) -> None:
    public_key, _ = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    close_modules()  # a new process, as serve at start
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("9999\n")
    uri = Pkcs11Uri.parse(f"pkcs11:token={softhsm.label};object=intermediate"
                          f"?pin-source=file:{wrong}")
    one_line_error(lambda: open_token_signer(uri, softhsm.module, certificate_for(public_key)),
                   "wrong PIN .*not retried")


def test_missing_token_names_the_tokens_there(softhsm: SoftHsm) -> None:
    uri = Pkcs11Uri.parse(f"pkcs11:token=no-such-token;object=k?pin-source={softhsm.pin_file}")
    message = one_line_error(
        lambda: generate_token_key(uri, softhsm.module, KeyType.EC_P256),
        "no token matches pkcs11:token=no-such-token")
    assert f"'{softhsm.label}' (serial " in message


def test_missing_object(softhsm: SoftHsm) -> None:
    generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    one_line_error(lambda: open_token_signer(uri_of(softhsm, "no-such-key"), softhsm.module,
                                             certificate_for(key)),
                   "no private key on the token matches .*object=no-such-key")


def test_missing_module(softhsm: SoftHsm, tmp_path: Path) -> None:
    uri = uri_of(softhsm)
    one_line_error(lambda: generate_token_key(uri, None, KeyType.EC_P256),
                   r"no PKCS#11 module for .*\[ca\] pkcs11_module")
    one_line_error(lambda: generate_token_key(uri, tmp_path / "libnothing.so",
                                              KeyType.EC_P256),
                   "PKCS#11 module .*libnothing.so does not exist")


def test_a_file_that_is_not_a_pkcs11_library(softhsm: SoftHsm, tmp_path: Path) -> None:
    text = tmp_path / "libtext.so"
    text.write_text("not a library\n")
    one_line_error(lambda: generate_token_key(uri_of(softhsm), text, KeyType.EC_P256),
                   "libtext.so is not a PKCS#11 library")
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")  # a library, but no C_GetFunctionList
    if libc.exists():
        one_line_error(lambda: generate_token_key(uri_of(softhsm), libc, KeyType.EC_P256),
                       "libc.so.6 is not a PKCS#11 library")


def test_a_module_that_fails_to_initialise(softhsm: SoftHsm, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    close_modules()
    monkeypatch.setenv("SOFTHSM2_CONF", str(tmp_path / "no-such.conf"))
    one_line_error(lambda: generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256),
                   "libsofthsm2.so failed to initialise: GeneralError")


def test_an_unsupported_key_type(softhsm: SoftHsm) -> None:
    from pkcs11 import KeyType as Pkcs11KeyType

    with raw_session(softhsm) as session:
        parameters = session.generate_domain_parameters(Pkcs11KeyType.DSA, 1024)
        parameters.generate_keypair(store=True, label="intermediate", id=b"dsa")
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    one_line_error(
        lambda: open_token_signer(uri_of(softhsm), softhsm.module, certificate_for(stranger)),
        "is a DSA key: only ECDSA and RSA keys sign certificates here")


def test_without_python_pkcs11(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # what `import pkcs11` meets uninstalled
    one_line_error(lambda: generate_token_key(uri_of(softhsm), softhsm.module,
                                              KeyType.EC_P256),
                   r"install the hsm extra: pip install 'acme-ca\[hsm\]'")


# --- making and destroying keys ------------------------------------------------------------


def test_generate_needs_a_label_and_no_id(softhsm: SoftHsm) -> None:
    no_label = Pkcs11Uri.parse(f"pkcs11:token={softhsm.label}?pin-source={softhsm.pin_file}")
    one_line_error(lambda: generate_token_key(no_label, softhsm.module, KeyType.EC_P256),
                   "names no object")
    one_line_error(lambda: generate_token_key(uri_of(softhsm).with_id(b"1"), softhsm.module,
                                              KeyType.EC_P256), "pins an id")


def test_destroy_removes_the_pinned_pair_only(softhsm: SoftHsm) -> None:
    old, old_uri = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    new, _ = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    destroy_token_key(old_uri, softhsm.module)
    one_line_error(lambda: open_token_signer(old_uri, softhsm.module, certificate_for(old)),
                   "no private key on the token matches")
    assert signs(open_token_signer(uri_of(softhsm), softhsm.module, certificate_for(new)))
    one_line_error(lambda: destroy_token_key(old_uri, softhsm.module), "nothing destroyed")
    one_line_error(lambda: destroy_token_key(uri_of(softhsm), softhsm.module), "names no id")
    from pkcs11 import Attribute

    with raw_session(softhsm) as session:
        assert {obj[Attribute.ID] for obj in session.get_objects()} == \
            {next(iter(session.get_objects()))[Attribute.ID]}


def test_destroy_refuses_an_id_that_several_private_keys_share(softhsm: SoftHsm) -> None:
    """CKA_ID need not be unique (PKCS#11 v2.40 base 4.7, key objects: whoever makes a
    key sets it, and no rule makes it one of a kind; pkcs11-tool's --id 01 is common):
    destroying "the archived key" by an id the current key shares would destroy both."""
    import pkcs11
    from pkcs11 import Attribute

    close_modules()
    lib = pkcs11.lib(str(softhsm.module))
    session = lib.get_token(token_label=softhsm.label).open(user_pin=softhsm.pin, rw=True)
    try:
        for _ in range(2):  # an operator's two keys, each made with --id 01
            parameters = session.create_domain_parameters(
                pkcs11.KeyType.EC, {Attribute.EC_PARAMS: ec_parameters("secp256r1")},
                local=True)
            parameters.generate_keypair(store=True, label="intermediate", id=b"\x01")
    finally:
        session.close()
        lib.finalize()
        close_modules()
    pinned = uri_of(softhsm).with_id(b"\x01")
    one_line_error(lambda: destroy_token_key(pinned, softhsm.module),
                   "2 private keys .* nothing destroyed")
    with raw_session(softhsm) as session:
        private = {Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}
        assert len(list(session.get_objects(private))) == 2


def ec_parameters(curve: str) -> bytes:
    from pkcs11.util.ec import encode_named_curve_parameters

    return bytes(encode_named_curve_parameters(curve))

