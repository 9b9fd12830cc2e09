"""Keys on a PKCS#11 token (an HSM, or SoftHSM2 in the tests), through python-pkcs11
(the ``hsm`` extra). The key is never exported: the token signs the bytes
``pki/signer.py`` hands it, and ``TokenSigner`` is a ``Signer`` like a key file.

- ``open_token_signer(uri, module, certificate)``: load the module, find the token,
  log in with the URI's PIN, find the private key among the objects the URI matches
  whose probe signature the certificate's public key verifies (several keys may share
  a label: a renewed intermediate's new key is made with the same label; a public key
  object of the same CKA_ID only orders the tries: anyone may make one, PIN or not).
  PkiError with one line each for: python-pkcs11 not installed, module missing or not
  a PKCS#11 library, token missing, wrong PIN (never retried: a token locks after a
  few; the same PIN is never sent to that token again by this process or the workers
  it forks), no such object, no object matching the certificate, a key type that cannot
  sign certificates here.
- ``TokenSigner.sign(data)`` hashes in Python (SoftHSM2 has no CKM_ECDSA_SHA256) and
  signs the digest with CKM_ECDSA, DER-encoding r||s (RFC 3279 2.2.3), or the data with
  CKM_SHA256_RSA_PKCS / CKM_SHA384_RSA_PKCS (RFC 8017 8.2).
- One ``_Module`` per loaded library, shared by every signer of it: its lock (a
  PKCS#11 session is not for two threads at once, and login is per application, not
  per session: one logged-in session per token serves them all), the process it was
  initialised in (a forked worker re-initialises the library before its first use),
  and whether it is broken. A PKCS#11 error while signing marks it broken; the next
  sign, at most one a second (the others fail fast), re-initialises the library
  (C_Finalize + C_Initialize: measured, nothing less brings back a SoftHSM2 token whose
  files went away and came back), logs in again and finds each key again by the same
  rule. A wrong PIN then stops the reconnecting until a login with another PIN works
  (a reload: Issuer.load opens the key again): a token locks after a few.
- ``share_logins(path)``: processes that share a token (serve's workers) take turns
  to initialise the library and log in, under an exclusive lock on ``path`` (flock),
  at start and at every reconnect alike. SoftHSM2 re-writes its token file at each
  login, and a process that reads it meanwhile finds no token (measured: 4 workers
  logging in at once failed to start 4 times in 5, once leaving the token file empty).
- ``generate_token_key`` / ``destroy_token_key``: a new key pair on the token (label
  from the URI, a fresh random CKA_ID; private key private, sensitive, not extractable,
  sign only), and the removal of an archived one named by its id.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from acme_ca.errors import PinRefused, PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.keys import KeyType, PublicKey, same_key, signature_hash
from acme_ca.pki.signer import verify_signature

RECONNECT_INTERVAL = 1.0  # seconds between two attempts to bring a broken module back
LOCK_WAIT = 10.0  # seconds a use of a module waits for another thread's use of it
ID_BYTES = 16  # CKA_ID of a key made here

# EC_PARAMS as tokens carry them: the DER of the named curve's OID
_CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
}
_CURVE_NAMES = {KeyType.EC_P256: "secp256r1", KeyType.EC_P384: "secp384r1"}


def _pkcs11() -> Any:
    """python-pkcs11, imported at first use: only a CA with a token key needs it."""
    try:
        import pkcs11
    except ImportError:
        raise PkiError("a key on a PKCS#11 token needs python-pkcs11: install the hsm "
                       "extra: pip install 'acme-ca[hsm]'") from None
    return pkcs11


# --- the loaded modules --------------------------------------------------------------


@dataclass(eq=False)
class _Module:
    """One loaded PKCS#11 library and what every signer of it shares."""

    path: Path
    lib: Any
    pid: int
    lock: threading.RLock = field(default_factory=threading.RLock)
    sessions: dict[int, Any] = field(default_factory=dict)  # slot id -> logged-in session
    generation: int = 0  # one more at each re-initialisation: key handles are stale
    broken: str | None = None  # the error signs raise until a reconnect works
    last_attempt: float = 0.0
    pin_refused: str | None = None  # a wrong PIN at a reconnect: signs stop until a login
    refused_pins: set[tuple[str, bytes]] = field(default_factory=set)  # (token, salted hash)

    def reinitialize(self) -> None:
        """C_Finalize + C_Initialize: every session and handle is gone after it."""
        with _logging_in():
            try:
                self.lib.finalize()
            except _pkcs11().PKCS11Error:
                pass  # e.g. a forked child, where the library may say it is not initialised
            self.lib.initialize()
        self.sessions.clear()
        self.generation += 1
        self.pid = os.getpid()


_modules: dict[str, _Module] = {}
_modules_lock = threading.Lock()

_login_path: Path | None = None  # share_logins: the lock file, or None (no other process)
_login_lock = threading.RLock()  # this process's holder of the lock file, and its depth
_login_fd: int | None = None
_login_depth = 0


def share_logins(path: Path | None) -> None:
    """From now on this process initialises a PKCS#11 library and logs in to a token
    only while it holds an exclusive lock on ``path`` (created 0600), as every other
    process given the same path does: at the first load, in a forked child, and at
    each reconnect after a token failure. None: no lock (one process)."""
    global _login_path
    _login_path = path


@contextmanager
def _logging_in() -> Iterator[None]:
    """The lock of ``share_logins`` held (re-entrant within this process)."""
    global _login_fd, _login_depth
    with _login_lock:
        if _login_depth == 0 and _login_path is not None:
            descriptor = os.open(_login_path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            except BaseException:
                os.close(descriptor)
                raise
            _login_fd = descriptor
        _login_depth += 1
        try:
            yield
        finally:
            _login_depth -= 1
            if _login_depth == 0 and _login_fd is not None:
                os.close(_login_fd)  # and the lock with it
                _login_fd = None


def _module(uri: Pkcs11Uri, module: Path | None) -> _Module:
    """The library ``module`` (else the URI's module-path), loaded once per process."""
    path = module or uri.module_path
    if path is None:
        raise PkiError(f"no PKCS#11 module for {uri}: set [ca] pkcs11_module "
                       "(or module-path in the URI)")
    pkcs11 = _pkcs11()
    if not path.is_file():
        raise PkiError(f"the PKCS#11 module {path} does not exist")
    key = os.path.realpath(path)  # one library behind two names is still one library
    with _modules_lock:
        loaded = _modules.get(key)
        if loaded is None:
            try:
                with _logging_in():
                    lib = pkcs11.lib(key)
            except pkcs11.PKCS11Error as exc:
                if "exception while loading" in str(exc):  # dlopen or dlsym said no
                    reason = re.sub(r"^.*?: (/\S+: )?", "", str(exc))
                    raise PkiError(f"{path} is not a PKCS#11 library ({reason})") from None
                raise PkiError(f"the PKCS#11 module {path} failed to initialise: "
                               f"{type(exc).__name__}") from None
            loaded = _modules[key] = _Module(path, lib, os.getpid())
        return loaded


def _after_fork_in_child() -> None:
    """A lock held by another thread at fork would never be released in the child."""
    global _modules_lock, _login_lock, _login_fd, _login_depth
    _modules_lock = threading.Lock()
    _login_lock = threading.RLock()
    if _login_fd is not None:  # the parent's: closing this copy leaves its lock held
        os.close(_login_fd)
    _login_fd, _login_depth = None, 0
    for loaded in _modules.values():
        loaded.lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def close_modules() -> None:
    """Finalise every library this process loaded (sessions closed, logged out). The
    next use loads it again: how a test that made a new SoftHSM2 token has the library
    read SOFTHSM2_CONF again."""
    with _modules_lock:
        for loaded in _modules.values():
            with loaded.lock:
                try:
                    loaded.lib.finalize()
                except _pkcs11().PKCS11Error:
                    pass
                loaded.sessions.clear()
        _modules.clear()


@contextmanager
def _using(loaded: _Module, uri: Pkcs11Uri) -> Iterator[None]:
    """``loaded`` locked, re-initialised first in a forked child; a PKCS#11 error
    inside becomes a one-line PkiError. PkiError when another thread has held the lock
    for ``LOCK_WAIT``: a call that hangs (a network HSM out of reach) holds one thread
    of the signing pool, not all of them."""
    pkcs11 = _pkcs11()
    if not loaded.lock.acquire(timeout=LOCK_WAIT):
        raise PkiError(f"the PKCS#11 token {uri} is busy: its module has been in use for "
                       f"{LOCK_WAIT:g}s")
    try:
        try:
            if loaded.pid != os.getpid():
                loaded.reinitialize()
            yield
        except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
            raise PinRefused(f"wrong PIN for the token of {uri} (not retried: a token "
                             "locks after a few wrong PINs)") from None
        except (pkcs11.PinLocked, pkcs11.PinExpired, pkcs11.UserPinNotInitialized) as exc:
            raise PinRefused(f"the token of {uri} refuses its user PIN: "
                             f"{type(exc).__name__}") from None
        except pkcs11.PKCS11Error as exc:
            raise PkiError(f"the PKCS#11 token {uri} failed: {type(exc).__name__}") from None
    finally:
        loaded.lock.release()


# --- tokens, sessions, keys ------------------------------------------------------------


def _session(loaded: _Module, uri: Pkcs11Uri) -> Any:
    """The logged-in session on the one token the URI names (loaded.lock held)."""
    pkcs11 = _pkcs11()
    with _logging_in():  # the slot list is read from the token files too (SoftHSM2)
        slot, token = _token(loaded, uri)
        session = loaded.sessions.get(slot.slot_id)
        if session is None:
            pin = uri.pin()
            refused = (_text(token.serial), _pin_digest(pin))
            if refused in loaded.refused_pins:
                raise PkiError(f"the token of {uri} refused this PIN before: it is not sent "
                               "again (a token locks after a few wrong PINs); fix the PIN")
            try:
                session = token.open(rw=True, user_pin=pin)
            except pkcs11.UserAlreadyLoggedIn:  # login is per application: it still holds
                session = token.open(rw=True)
            except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
                loaded.refused_pins.add(refused)  # inherited by the workers forked later
                raise
            loaded.sessions[slot.slot_id] = session
            loaded.pin_refused = None  # a reload with the right PIN ends a refused reconnect
    return session


_PIN_SALT = secrets.token_bytes(16)  # the digests of refused PINs stay in this process


def _pin_digest(pin: str | None) -> bytes:
    return hashlib.sha256(_PIN_SALT + (pin or "").encode()).digest()


def _token(loaded: _Module, uri: Pkcs11Uri) -> tuple[Any, Any]:
    """The slot and token matching the URI's token, slot and library attributes (RFC
    7512 2.5: each one given must match)."""
    pkcs11 = _pkcs11()
    wanted = {"token": uri.token, **dict(uri.attributes)}
    library = {"library-manufacturer": loaded.lib.manufacturer_id,
               "library-description": loaded.lib.library_description,
               "library-version": "{}.{}".format(*loaded.lib.library_version)}
    for name, value in library.items():
        if name in wanted and not _same_version_or_text(name, wanted[name], value):
            raise PkiError(f"the PKCS#11 module {loaded.path} is not the library {uri} "
                           f"names ({name} is {value!r})")
    found, seen = [], []
    for slot in loaded.lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except (pkcs11.TokenNotPresent, pkcs11.TokenNotRecognised):
            continue
        if token.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED:
            seen.append(f"{token.label!r} (serial {_text(token.serial)})")
        facts = {"token": token.label, "serial": _text(token.serial),
                 "manufacturer": token.manufacturer_id, "model": token.model,
                 "slot-id": str(slot.slot_id), "slot-description": slot.slot_description,
                 "slot-manufacturer": slot.manufacturer_id}
        if all(wanted.get(name) in (None, value) for name, value in facts.items()):
            found.append((slot, token))
    if not found:
        raise PkiError(f"no token matches {uri} in {loaded.path}; the tokens there: "
                       f"{', '.join(seen) or 'none'}")
    if len(found) > 1:
        raise PkiError(f"{len(found)} tokens match {uri}: name one by its serial")
    return found[0]


def _same_version_or_text(name: str, wanted: str | None, value: str) -> bool:
    if name == "library-version" and wanted is not None:
        major, _, minor = wanted.partition(".")
        return (int(major), int(minor or 0)) == tuple(map(int, value.split(".")))
    return wanted in (None, value)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _private_keys(session: Any, uri: Pkcs11Uri) -> list[Any]:
    """The private keys the URI's object and id name."""
    pkcs11 = _pkcs11()
    query: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        query[pkcs11.Attribute.LABEL] = uri.object
    if uri.object_id is not None:
        query[pkcs11.Attribute.ID] = uri.object_id
    return list(session.get_objects(query))


def _public_key(session: Any, private_key: Any) -> PublicKey | None:
    """The public half of ``private_key``, from the public key object with the same
    CKA_ID; None when the token keeps no such object."""
    pkcs11 = _pkcs11()
    query = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY,
             pkcs11.Attribute.ID: private_key[pkcs11.Attribute.ID]}
    for public in session.get_objects(query):
        found = _decoded(public)
        if found is not None:
            return found
    return None


def _decoded(public: Any) -> PublicKey | None:
    """The key a public key object holds (RSA or EC), else None."""
    pkcs11 = _pkcs11()
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
        header = 2 if point[1] < 0x80 else 2 + (point[1] & 0x7F)
        candidates.insert(0, point[header:])
    for candidate in candidates:
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, bytes(candidate))
        except ValueError:
            continue
    return None


def _find_key(loaded: _Module, uri: Pkcs11Uri, public_key: PublicKey) -> Any:
    """The private key the URI names whose public key is ``public_key`` (loaded.lock held)."""
    pkcs11 = _pkcs11()
    session = _session(loaded, uri)
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
    except _pkcs11().PKCS11Error:
        return False  # e.g. an RSA key asked for ECDSA
    return verify_signature(public_key, signature, probe, algorithm)


def _raw_sign(key: Any, public_key: PublicKey, algorithm: hashes.HashAlgorithm,
              data: bytes) -> bytes:
    """The signature as X.509 carries it: CKM_ECDSA over the digest, r||s made a DER
    ECDSA-Sig-Value (RFC 3279 2.2.3); CKM_SHA*_RSA_PKCS over the data (RFC 8017 8.2)."""
    pkcs11 = _pkcs11()
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

    def __init__(self, uri: Pkcs11Uri, module: _Module, public_key: PublicKey,
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
        with _using(self._module, self.uri):
            return self.uri.with_id(bytes(self._key[_pkcs11().Attribute.ID]))

    def sign(self, data: bytes) -> bytes:
        """The signature over ``data``; PkiError when the token fails (and the next
        sign, a second later at the earliest, reconnects)."""
        with _using(self._module, self.uri):
            self._reconnect_if_broken()
            try:
                return _raw_sign(self._key, self._public_key, self.hash_algorithm, data)
            except _pkcs11().PKCS11Error as exc:
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
            except _pkcs11().PKCS11Error as exc:
                raise self._broken(f"the PKCS#11 module {loaded.path} failed to "
                                   f"re-initialise: {type(exc).__name__}") from None
            loaded.broken = None
        if self._generation == loaded.generation:
            return
        try:
            with _logging_in():
                self._key = _find_key(loaded, self.uri, self._public_key)
        except _pkcs11().PinIncorrect:
            loaded.pin_refused = (f"wrong PIN for the token of {self.uri} at a reconnect: "
                                  "not retried until a restart or a reload logs in (a "
                                  "token locks after a few)")
            raise PkiError(loaded.pin_refused) from None
        except _pkcs11().PKCS11Error as exc:
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
    loaded = _module(uri, module)
    with _using(loaded, uri):
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
    pkcs11 = _pkcs11()
    loaded = _module(uri, module)
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
    with _using(loaded, uri):
        session = _session(loaded, uri)
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
    pkcs11 = _pkcs11()
    loaded = _module(uri, module)
    with _using(loaded, uri):
        session = _session(loaded, uri)
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
    pkcs11 = _pkcs11()
    if obj.object_class == pkcs11.ObjectClass.PUBLIC_KEY:
        decoded = _decoded(obj)
        return decoded is not None and same_key(decoded, public_key)
    return _signs_for(obj, public_key)

