"""Keys on a PKCS#11 token (pki/token.py, pki/token_session.py) at run time, against
SoftHSM2 (tests/softhsm.py): a token that fails and comes back without a restart, a
wrong PIN at a reconnect tried once, forked children and threads signing, public
objects swapped without the PIN (PKCS#11 v2.20 6.7.2), /readyz, and a hung token
waited for a bounded time."""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from acme_ca.authority.readiness import signing_check
from acme_ca.errors import PkiError
from acme_ca.pki.keys import KeyType
from acme_ca.pki.signer import verify_signature
from acme_ca.pki.token import RECONNECT_INTERVAL, generate_token_key, open_token_signer
from acme_ca.pki.token_session import close_modules
from tests.conftest import Hierarchy, load_issuer
from tests.pki.token_helpers import certificate_for, one_line_error, signer_for, signs, uri_of
from tests.softhsm import SoftHsm
from tests.waiting import DEADLINE, exit_codes, until


async def test_a_token_that_fails_at_run_time_comes_back(softhsm: SoftHsm,
                                                         tmp_path: Path) -> None:
    """A sign while the token's objects are gone raises PkiError and marks the module
    broken; the next signs fail fast for a second, then reconnect: once the objects are
    back, signing works again without a restart."""
    signer, _ = signer_for(softhsm)
    assert signs(signer)
    failed = re.escape(f"the PKCS#11 token {signer.uri} failed: ")
    with softhsm.away(tmp_path / "away"):
        one_line_error(lambda: signer.sign(b"x"), failed)
        started = time.monotonic()
        one_line_error(lambda: signer.sign(b"x"), failed)  # fails fast, no reconnect yet
        assert time.monotonic() - started < RECONNECT_INTERVAL

    def signs_again() -> bool:
        try:
            return signs(signer)
        except PkiError:
            return False

    await until(signs_again, "the token signs again")


def test_a_forked_child_signs_with_the_parents_signer(softhsm: SoftHsm) -> None:
    signer, _ = signer_for(softhsm)
    assert signs(signer)
    pid = os.fork()
    if pid == 0:  # the child: re-initialises the library before its first use
        code = 1
        try:
            if signs(signer) and signer._module.pid == os.getpid():
                code = 0
        finally:
            os._exit(code)
    assert exit_codes([pid], "the forked child exits") == [0]
    assert signs(signer)  # and the parent's own sessions are untouched


def test_signs_from_eight_threads_all_verify(softhsm: SoftHsm) -> None:
    signer, _ = signer_for(softhsm, KeyType.EC_P384)
    messages = [os.urandom(64) for _ in range(400)]
    with ThreadPoolExecutor(8) as pool:
        signatures = list(pool.map(signer.sign, messages))
    assert all(verify_signature(signer.public_key, signature, message, signer.hash_algorithm)
               for signature, message in zip(signatures, messages, strict=True))


def test_signers_of_one_module_share_its_lock(softhsm: SoftHsm) -> None:
    """The current and an archived intermediate key: one module, one lock, one login."""
    first, _ = signer_for(softhsm)
    second, _ = signer_for(softhsm)
    assert first._module is second._module
    assert signs(first) and signs(second)


async def test_a_wrong_pin_at_a_reconnect_is_not_tried_again(softhsm: SoftHsm,
                                                             tmp_path: Path) -> None:
    """The PIN file changed while the token was away: the reconnect's login fails once,
    and no later sign logs in again (a token locks after a few wrong PINs)."""
    signer, _ = signer_for(softhsm)
    with softhsm.away(tmp_path / "away"):
        one_line_error(lambda: signer.sign(b"x"), "failed: ")
        softhsm.pin_file.write_text("9999\n")
    messages: list[str] = []

    def refused() -> bool:
        try:
            signer.sign(b"x")
        except PkiError as exc:
            messages.append(str(exc))
        return bool(messages) and "wrong PIN" in messages[-1]

    await until(refused, "the reconnect meets the wrong PIN")
    softhsm.pin_file.write_text(softhsm.pin + "\n")  # even the right one is not tried now
    signer._module.last_attempt = 0.0  # as if the interval had passed
    one_line_error(lambda: signer.sign(b"x"), "wrong PIN .*not retried until a restart")


def test_public_objects_swapped_without_the_pin_do_not_pick_the_key(softhsm: SoftHsm) -> None:
    """Public objects need no login to be made or destroyed (PKCS#11 v2.20 6.7.2: a R/W
    Public Session reads and writes every public object), so what a public
    key object claims is no proof: whoever reaches the token without the PIN can give
    the old key's CKA_ID a public object claiming the new key. The key is the one whose
    signature the certificate's public key verifies."""
    import pkcs11
    from pkcs11 import Attribute, ObjectClass
    from pkcs11.util.ec import decode_ec_public_key

    old, old_uri = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    new, new_uri = generate_token_key(uri_of(softhsm), softhsm.module, KeyType.EC_P256)
    close_modules()
    lib = pkcs11.lib(str(softhsm.module))
    session = lib.get_token(token_label=softhsm.label).open(rw=True)  # no PIN
    try:
        for public in list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})):
            public.destroy()
        for object_id, claimed in ((old_uri.object_id, new), (new_uri.object_id, old)):
            der = claimed.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            session.create_object({**decode_ec_public_key(der), Attribute.TOKEN: True,
                                   Attribute.PRIVATE: False, Attribute.LABEL: "intermediate",
                                   Attribute.ID: object_id})
    finally:
        session.close()
        lib.finalize()
        close_modules()
    for public_key in (new, old):
        signer = open_token_signer(uri_of(softhsm), softhsm.module, certificate_for(public_key))
        assert signs(signer)


def test_readyz_says_the_token_fails_without_its_internals(
        softhsm: SoftHsm, hierarchy: Hierarchy, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """/readyz answers anyone who reaches the ACME listener (authority/readiness.py): a
    token's failure there names no URI, PIN file, module or token list (a reconnect's
    "no token matches ...; the tokens there: ..." listed every token's label and
    serial); the log has the whole message, as for the store check."""
    signer, _ = signer_for(softhsm)
    issuer = replace(load_issuer(hierarchy), signer=signer)
    with softhsm.away(tmp_path / "away"):
        check = signing_check(issuer)
    assert not check.ok and check.detail.startswith("the intermediate key cannot sign")
    assert "pkcs11:" not in check.detail and str(softhsm.pin_file) not in check.detail
    assert str(signer.uri) in caplog.text


def test_a_sign_waits_for_a_hung_token_a_bounded_time(
        softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PKCS#11 call that hangs (a network HSM out of reach until a TCP timeout) holds
    the module's lock: the signatures behind it fail after LOCK_WAIT instead of each
    holding a thread of the signing pool, which OCSP responses and CRLs share, until
    the call returns. Here another thread holds the lock as a hung call would."""
    from acme_ca.pki import token_session

    monkeypatch.setattr(token_session, "LOCK_WAIT", 0.3)
    signer, _ = signer_for(softhsm)
    held, release = threading.Event(), threading.Event()

    def hung_call() -> None:
        with signer._module.lock:
            held.set()
            release.wait(DEADLINE)

    holder = threading.Thread(target=hung_call)
    holder.start()
    try:
        assert held.wait(DEADLINE)
        started = time.monotonic()
        one_line_error(lambda: signer.sign(b"x"), "is busy")
        assert time.monotonic() - started < DEADLINE / 2
    finally:
        release.set()
        holder.join()
    assert signs(signer)
