"""The PKCS#11 side of a token key: the library loaded, the token found, the user
logged in, through python-pkcs11 (the ``hsm`` extra). pki/token.py finds and uses the
keys; this module is what every key of one library shares.

- One ``LoadedModule`` per library (``loaded_module``), shared by every signer of it:
  its lock (a PKCS#11 session is not for two threads at once, and login is per
  application, not per session: one logged-in session per token serves them all),
  the process it was initialised in (a forked worker re-initialises the library before
  its first use: ``using``), whether it is broken (what pki/token.py's reconnect
  reads and clears), and the PINs a token refused.
- ``logged_in_session``: the one token the URI names (RFC 7512 2.5: each attribute
  given must match), logged in with the URI's PIN. A wrong PIN is never sent again to
  that token by this process or the workers it forks: a token locks after a few.
- ``share_logins(path)``: processes that share a token (serve's workers) take turns
  to initialise the library and log in, under an exclusive lock on ``path`` (flock),
  at start and at every reconnect alike. SoftHSM2 re-writes its token file at each
  login, and a process that reads it meanwhile finds no token (measured: 4 workers
  logging in at once failed to start 4 times in 5, once leaving the token file empty).
- ``close_modules``: every library finalised (tests that make a new SoftHSM2 token).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acme_ca.errors import PinRefused, PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files

LOCK_WAIT = 10.0  # seconds a use of a module waits for another thread's use of it


def python_pkcs11() -> Any:
    """python-pkcs11, imported at first use: only a CA with a token key needs it."""
    try:
        import pkcs11
    except ImportError:
        raise PkiError("a key on a PKCS#11 token needs python-pkcs11: install the hsm "
                       "extra: pip install 'acme-ca[hsm]'") from None
    return pkcs11


@dataclass(eq=False)
class LoadedModule:
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
        with logging_in():
            try:
                self.lib.finalize()
            except python_pkcs11().PKCS11Error:
                pass  # e.g. a forked child, where the library may say it is not initialised
            self.lib.initialize()
        self.sessions.clear()
        self.generation += 1
        self.pid = os.getpid()


_modules: dict[str, LoadedModule] = {}
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
def logging_in() -> Iterator[None]:
    """The lock of ``share_logins`` held (re-entrant within this process)."""
    global _login_fd, _login_depth
    with _login_lock:
        if _login_depth == 0 and _login_path is not None:
            descriptor = os.open(_login_path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC,
                                 files.PRIVATE_FILE)
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


def loaded_module(uri: Pkcs11Uri, module: Path | None) -> LoadedModule:
    """The library ``module`` (else the URI's module-path), loaded once per process."""
    path = module or uri.module_path
    if path is None:
        raise PkiError(f"no PKCS#11 module for {uri}: set [ca] pkcs11_module "
                       "(or module-path in the URI)")
    pkcs11 = python_pkcs11()
    if not path.is_file():
        raise PkiError(f"the PKCS#11 module {path} does not exist")
    key = os.path.realpath(path)  # one library behind two names is still one library
    with _modules_lock:
        loaded = _modules.get(key)
        if loaded is None:
            try:
                with logging_in():
                    lib = pkcs11.lib(key)
            except pkcs11.PKCS11Error as exc:
                if "exception while loading" in str(exc):  # dlopen or dlsym said no
                    reason = re.sub(r"^.*?: (/\S+: )?", "", str(exc))
                    raise PkiError(f"{path} is not a PKCS#11 library ({reason})") from None
                raise PkiError(f"the PKCS#11 module {path} failed to initialise: "
                               f"{type(exc).__name__}") from None
            loaded = _modules[key] = LoadedModule(path, lib, os.getpid())
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
                except python_pkcs11().PKCS11Error:
                    pass
                loaded.sessions.clear()
        _modules.clear()


@contextmanager
def using(loaded: LoadedModule, uri: Pkcs11Uri) -> Iterator[None]:
    """``loaded`` locked, re-initialised first in a forked child; a PKCS#11 error
    inside becomes a one-line PkiError. PkiError when another thread has held the lock
    for ``LOCK_WAIT``: a call that hangs (a network HSM out of reach) holds one thread
    of the signing pool, not all of them."""
    pkcs11 = python_pkcs11()
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


def logged_in_session(loaded: LoadedModule, uri: Pkcs11Uri) -> Any:
    """The logged-in session on the one token the URI names (loaded.lock held)."""
    pkcs11 = python_pkcs11()
    with logging_in():  # the slot list is read from the token files too (SoftHSM2)
        slot, token = _token(loaded, uri)
        session = loaded.sessions.get(slot.slot_id)
        if session is None:
            pin = uri.pin()
            refused = (_text(token.serial), _pin_digest(pin))
            if refused in loaded.refused_pins:
                raise PinRefused(f"the token of {uri} refused this PIN before: it is not "
                                 "sent again (a token locks after a few wrong PINs); fix "
                                 "the PIN")
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


def _token(loaded: LoadedModule, uri: Pkcs11Uri) -> tuple[Any, Any]:
    """The slot and token matching the URI's token, slot and library attributes (RFC
    7512 2.5: each one given must match)."""
    pkcs11 = python_pkcs11()
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
        narrowed = " or ".join(str(uri.with_attribute("serial", _text(token.serial)))
                               for _, token in found)
        raise PkiError(f"{len(found)} tokens match {uri}: name one by its serial, as in "
                       f"{narrowed}")
    return found[0]


def _same_version_or_text(name: str, wanted: str | None, value: str) -> bool:
    if name == "library-version" and wanted is not None:
        major, _, minor = wanted.partition(".")
        return (int(major), int(minor or 0)) == tuple(map(int, value.split(".")))
    return wanted in (None, value)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
