"""Keys on a PKCS#11 token (an HSM, or SoftHSM2 in the tests): found, made, used and
destroyed. The key is never exported: the token signs the bytes ``pki/signer.py``
hands it, and ``TokenSigner`` is a ``Signer`` like a key file. The library, the token
and the login that every key of one library shares are pki/token_session.py's.

- ``open_token_signer(uri, module, certificate)``: the logged-in session on the token
  the URI names (pki/token_session.py), then the private key among the objects the
  URI matches whose probe signature the certificate's public key verifies (several
  keys may share a label: a renewed intermediate's new key is made with the same
  label; a public key object of the same CKA_ID only orders the tries: anyone may make
  one, PIN or not). PkiError with one line each for: python-pkcs11 not installed,
  module missing or not a PKCS#11 library, token missing, wrong PIN (never retried: a
  token locks after a few), no such object, no object matching the certificate, a key
  type that cannot sign certificates here.
- ``TokenSigner.sign(data)`` hashes in Python (SoftHSM2 has no CKM_ECDSA_SHA256) and
  signs the digest with CKM_ECDSA, DER-encoding r||s (RFC 3279 2.2.3), or the data with
  CKM_SHA256_RSA_PKCS / CKM_SHA384_RSA_PKCS (RFC 8017 8.2).
- Reconnecting: a PKCS#11 error while signing marks the signer's library
  (pki/token_session.py's ``LoadedModule``, shared by every key of it) broken; the
  next sign, at most one a second (the others fail fast), re-initialises the library
  (C_Finalize + C_Initialize: measured, nothing less brings back a SoftHSM2 token whose
  files went away and came back), logs in again and finds each key again by the same
  rule. A wrong PIN then stops the reconnecting until a login with another PIN works
  (a reload: Issuer.load opens the key again): a token locks after a few.
- ``generate_token_key`` / ``destroy_token_key``: a new key pair on the token (label
  from the URI, a fresh random CKA_ID; private key private, sensitive, not extractable,
  sign only), and the removal of an archived one named by its id.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.der import header_length
from acme_ca.pki.keys import KeyType, PublicKey, same_key, signature_hash
from acme_ca.pki.signer import verify_signature
from acme_ca.pki.token_session import (
    LoadedModule,
    loaded_module,
    logged_in_session,
    logging_in,
    python_pkcs11,
    using,
)

RECONNECT_INTERVAL = 1.0  # seconds between two attempts to bring a broken module back
ID_BYTES = 16  # CKA_ID of a key made here

# EC_PARAMS as tokens carry them: the DER of the named curve's OID
_CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
}
_CURVE_NAMES = {KeyType.EC_P256: "secp256r1", KeyType.EC_P384: "secp384r1"}


def _private_keys(session: Any, uri: Pkcs11Uri) -> list[Any]:
    """The private keys the URI's object and id name."""
    pkcs11 = python_pkcs11()
    query: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        query[pkcs11.Attribute.LABEL] = uri.object
    if uri.object_id is not None:
        query[pkcs11.Attribute.ID] = uri.object_id
    return list(session.get_objects(query))


def _public_key(session: Any, private_key: Any) -> PublicKey | None:
    """The public half of ``private_key``, from the public key object with the same
    CKA_ID; None when the token keeps no such object."""
    pkcs11 = python_pkcs11()
    query = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY,
             pkcs11.Attribute.ID: private_key[pkcs11.Attribute.ID]}
    for public in session.get_objects(query):
        found = _decoded(public)
        if found is not None:
            return found
    return None


def _decoded(public: Any) -> PublicKey | None:
    """The key a public key object holds (RSA or EC), else None."""
    pkcs11 = python_pkcs11()
    if public.key_type == pkcs11.KeyType.RSA:
        return rsa.RSAPublicNumbers(
            int.from_bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[pkcs11.Attribute.MODULUS], "big")).public_key()
    if public.key_type == pkcs11.KeyType.EC:
        return _ec_public_key(public[pkcs11.Attribute.EC_PARAMS],
                              public[pkcs11.Attribute.EC_POINT])
    return None


def _ec_public_key(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey | None:
    """CKA_EC_POINT is the DER OCTET STRING of the point (PKCS#11 2.40 2.3.3); some
    tokens give the bare point."""
    curve = _CURVES.get(bytes(params))
    if curve is None:
        return None
    candidates = [point]
    if len(point) > 2 and point[0] == 0x04:
        candidates.insert(0, point[header_length(point, 0):])
    for candidate in candidates:
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, bytes(candidate))
        except ValueError:
            continue
    return None


def _find_key(loaded: LoadedModule, uri: Pkcs11Uri, public_key: PublicKey) -> Any:
    """The private key the URI names whose public key is ``public_key`` (loaded.lock held)."""
    pkcs11 = python_pkcs11()
    session = logged_in_session(loaded, uri)
    keys = _private_keys(session, uri)
    if not keys:
        hint = "" if uri.pin_source or uri.pin_value else \
            " (the URI gives no PIN: private keys show only after a login)"
        raise PkiError(f"no private key on the token matches {uri}{hint}")
    # A public key object is a hint, never proof: it needs no login to be made or
    # destroyed (PKCS#11 v2.20 6.7.2: a R/W Public Session), so a key is the
    # certificate's only once its probe signature verifies; those whose public object
    # claims the certificate's key are tried first.
    signing = [key for key in keys if key.key_type in (pkcs11.KeyType.EC, pkcs11.KeyType.RSA)]
    claimed = [same_key(public, public_key) if (public := _public_key(session, key))
               else False for key in signing]
    for key in ([k for k, c in zip(signing, claimed, strict=True) if c]
                + [k for k, c in zip(signing, claimed, strict=True) if not c]):
        if _signs_for(key, public_key):
            return key
    kinds = {key.key_type for key in keys} - {pkcs11.KeyType.EC, pkcs11.KeyType.RSA}
    if kinds and len(kinds) == len({key.key_type for key in keys}):
        raise PkiError(f"the key {uri} is a {', '.join(k.name for k in kinds)} key: only "
                       "ECDSA and RSA keys sign certificates here")
    if len(keys) == 1:
        raise PkiError(f"the key that {uri} names is not the key of its certificate")
    raise PkiError(f"none of the {len(keys)} keys that {uri} names is the key of its "
                   "certificate")


def _signs_for(key: Any, public_key: PublicKey) -> bool:
    """Whether ``key`` signs a probe that ``public_key`` verifies: how a key is matched
    to its certificate."""
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    probe = secrets.token_bytes(32)
    algorithm = signature_hash(public_key)
    try:
        signature = _raw_sign(key, public_key, algorithm, probe)
    except python_pkcs11().PKCS11Error:
        return False  # e.g. an RSA key asked for ECDSA
    return verify_signature(public_key, signature, probe, algorithm)


def _raw_sign(key: Any, public_key: PublicKey, algorithm: hashes.HashAlgorithm,
              data: bytes) -> bytes:
    """The signature as X.509 carries it: CKM_ECDSA over the digest, r||s made a DER
    ECDSA-Sig-Value (RFC 3279 2.2.3); CKM_SHA*_RSA_PKCS over the data (RFC 8017 8.2)."""
    pkcs11 = python_pkcs11()
    if isinstance(public_key, rsa.RSAPublicKey):
        mechanism = (pkcs11.Mechanism.SHA384_RSA_PKCS if isinstance(algorithm, hashes.SHA384)
                     else pkcs11.Mechanism.SHA256_RSA_PKCS)
        return bytes(key.sign(data, mechanism=mechanism))
    digest = hashes.Hash(algorithm)
    digest.update(data)
    raw = bytes(key.sign(digest.finalize(), mechanism=pkcs11.Mechanism.ECDSA))
    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                int.from_bytes(raw[half:], "big"))


# --- the signer --------------------------------------------------------------------------


class TokenSigner:
    """A key on a token, signing for the CA (pki/signer.py's ``Signer``)."""

    def __init__(self, uri: Pkcs11Uri, module: LoadedModule, public_key: PublicKey,
                 key: Any) -> None:
        self.uri = uri
        self._module = module
        self._public_key = public_key
        self._key = key
        self._generation = module.generation

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return signature_hash(self._public_key)

    def describe(self) -> str:
        return str(self.uri)

    def pinned_uri(self) -> Pkcs11Uri:
        """``uri`` pinned to the CKA_ID of the key found (``Pkcs11Uri.with_id``): the name
        of this key alone, as the archive keeps a replaced intermediate's key once a
        newer key carries the same label (pki/archive.py)."""
        with using(self._module, self.uri):
            return self.uri.with_id(bytes(self._key[python_pkcs11().Attribute.ID]))

    def sign(self, data: bytes) -> bytes:
        """The signature over ``data``; PkiError when the token fails (and the next
        sign, a second later at the earliest, reconnects)."""
        with using(self._module, self.uri):
            self._reconnect_if_broken()
            try:
                return _raw_sign(self._key, self._public_key, self.hash_algorithm, data)
            except python_pkcs11().PKCS11Error as exc:
                raise self._broken(f"the PKCS#11 token {self.uri} failed: "
                                   f"{type(exc).__name__}") from None

    def _broken(self, message: str) -> PkiError:
        """Mark the module broken with ``message``, what the signs until the next
        reconnect attempt raise."""
        self._module.broken, self._module.last_attempt = message, time.monotonic()
        return PkiError(message)

    def _reconnect_if_broken(self) -> None:
        """(lock held) Re-initialise a broken module, at most once a second, and find
        this signer's key again when the module was re-initialised since it found it."""
        loaded = self._module
        if loaded.pin_refused:
            raise PkiError(loaded.pin_refused)
        if loaded.broken is not None:
            if time.monotonic() - loaded.last_attempt < RECONNECT_INTERVAL:
                raise PkiError(loaded.broken)
            try:
                loaded.reinitialize()
            except python_pkcs11().PKCS11Error as exc:
                raise self._broken(f"the PKCS#11 module {loaded.path} failed to "
                                   f"re-initialise: {type(exc).__name__}") from None
            loaded.broken = None
        if self._generation == loaded.generation:
            return
        try:
            with logging_in():
                self._key = _find_key(loaded, self.uri, self._public_key)
        except python_pkcs11().PinIncorrect:
            loaded.pin_refused = (f"wrong PIN for the token of {self.uri} at a reconnect: "
                                  "not retried until a restart or a reload logs in (a "
                                  "token locks after a few)")
            raise PkiError(loaded.pin_refused) from None
        except python_pkcs11().PKCS11Error as exc:
            raise self._broken(f"the PKCS#11 token {self.uri} failed: "
                               f"{type(exc).__name__}") from None
        except PkiError as exc:  # the token, or the key, is not back yet
            raise self._broken(str(exc)) from None
        self._generation = loaded.generation


def open_token_signer(uri: Pkcs11Uri, module: Path | None,
                      certificate: x509.Certificate) -> TokenSigner:
    """The signer of ``certificate``'s key, on the token ``uri`` names."""
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise PkiError(f"the certificate of {uri} has a key that cannot sign here")
    loaded = loaded_module(uri, module)
    with using(loaded, uri):
        key = _find_key(loaded, uri, public_key)
        return TokenSigner(uri, loaded, public_key, key)


def generate_token_key(uri: Pkcs11Uri, module: Path | None,
                       key_type: KeyType) -> tuple[PublicKey, Pkcs11Uri]:
    """A new key pair on the token, labelled with the URI's object, with a fresh random
    CKA_ID; the private half private, sensitive, never extractable, sign only (no
    CKA_SIGN_RECOVER either: PKCS#11 2.40 base 4.9). Returns
    its public key and the URI pinned to its id."""
    if uri.object is None:
        raise PkiError(f"{uri} names no object: the new key's label is its object=")
    if uri.object_id is not None:
        raise PkiError(f"{uri} pins an id: a new key gets a fresh one")
    pkcs11 = python_pkcs11()
    loaded = loaded_module(uri, module)
    object_id = secrets.token_bytes(ID_BYTES)
    common = {"store": True, "label": uri.object, "id": object_id,
              "capabilities": pkcs11.MechanismFlag.SIGN | pkcs11.MechanismFlag.VERIFY,
              "public_template": {pkcs11.Attribute.TOKEN: True,
                                  pkcs11.Attribute.VERIFY: True},
              "private_template": {pkcs11.Attribute.TOKEN: True,
                                   pkcs11.Attribute.PRIVATE: True,
                                   pkcs11.Attribute.SENSITIVE: True,
                                   pkcs11.Attribute.EXTRACTABLE: False,
                                   pkcs11.Attribute.SIGN: True,
                                   pkcs11.Attribute.SIGN_RECOVER: False,
                                   pkcs11.Attribute.DECRYPT: False,
                                   pkcs11.Attribute.UNWRAP: False,
                                   pkcs11.Attribute.DERIVE: False}}
    with using(loaded, uri):
        session = logged_in_session(loaded, uri)
        if key_type in _CURVE_NAMES:
            from pkcs11.util.ec import encode_named_curve_parameters

            parameters = session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters(
                    _CURVE_NAMES[key_type])}, local=True)
            public, _ = parameters.generate_keypair(**common)
        else:
            public, _ = session.generate_keypair(pkcs11.KeyType.RSA, int(key_type.value[3:]),
                                                 **common)
        public_key = _public_key(session, public)
    if public_key is None:
        raise PkiError(f"the token of {uri} made a key whose public half it does not keep")
    return public_key, uri.with_id(object_id)


def destroy_token_key(uri: Pkcs11Uri, module: Path | None,
                      public_key: PublicKey | None = None) -> None:
    """Destroy the key pair (private and public objects) the id-pinned ``uri`` names;
    with ``public_key``, only the objects of that key: a CKA_ID is unique only by
    convention (keys made or imported by other tools may share one), and another key
    under the same id may be the one in use. Nothing when more than one private key
    remains."""
    if uri.object_id is None:
        raise PkiError(f"{uri} names no id: only a key pinned by its id is destroyed")
    pkcs11 = python_pkcs11()
    loaded = loaded_module(uri, module)
    with using(loaded, uri):
        session = logged_in_session(loaded, uri)
        found = []
        for kind in (pkcs11.ObjectClass.PRIVATE_KEY, pkcs11.ObjectClass.PUBLIC_KEY):
            query = {pkcs11.Attribute.CLASS: kind, pkcs11.Attribute.ID: uri.object_id}
            if uri.object is not None:
                query[pkcs11.Attribute.LABEL] = uri.object
            found += list(session.get_objects(query))
        if public_key is not None:
            found = [obj for obj in found if _holds(obj, public_key)]
        if not found:
            raise PkiError(f"no key on the token matches {uri}: nothing destroyed")
        private = sum(obj.object_class == pkcs11.ObjectClass.PRIVATE_KEY for obj in found)
        if private > 1:  # CKA_ID is not unique (PKCS#11 2.40 base 4.7): one may be in use
            raise PkiError(f"{private} private keys on the token match {uri}: nothing "
                           "destroyed")
        for obj in found:
            obj.destroy()


def _holds(obj: Any, public_key: PublicKey) -> bool:
    """Whether the key object ``obj`` is half of ``public_key``'s pair: a public object
    holds it, a private one signs a probe it verifies."""
    pkcs11 = python_pkcs11()
    if obj.object_class == pkcs11.ObjectClass.PUBLIC_KEY:
        decoded = _decoded(obj)
        return decoded is not None and same_key(decoded, public_key)
    return _signs_for(obj, public_key)


