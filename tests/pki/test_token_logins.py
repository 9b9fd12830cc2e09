"""Processes that share a token take turns to log in (pki/token_session.py ``share_logins``):
serve's workers at start and at every reconnect after a token failure. SoftHSM2
re-writes its token file at each login, and a worker that reads it meanwhile finds no
token; 4 workers logging in at once once left the token file empty."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acme_ca.errors import PkiError
from acme_ca.pki import token
from acme_ca.pki.token import RECONNECT_INTERVAL
from acme_ca.pki.token_session import share_logins
from tests.pki.token_helpers import signer_for, signs
from tests.softhsm import SoftHsm
from tests.waiting import DEADLINE, POLL, exit_codes

WORKERS = 3


@pytest.fixture
def lock_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pkcs11.lock"
    share_logins(path)
    yield path
    share_logins(None)


def _worker(signer: token.TokenSigner, to_parent: int, from_parent: int) -> None:
    """A forked worker: sign; fail while the token is away; reconnect when it is back."""
    code = 1
    try:
        if signs(signer):
            os.write(to_parent, b"1")
        os.read(from_parent, 1)  # the token's objects are away
        try:
            signer.sign(b"x")
            code = 2
            return
        except PkiError:
            pass
        os.write(to_parent, b"2")
        os.read(from_parent, 1)  # back; the parent holds the lock
        time.sleep(RECONNECT_INTERVAL * 1.1)
        os.write(to_parent, b"3")
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                if signs(signer):
                    code = 0
                    return
            except PkiError:
                time.sleep(POLL)
    finally:
        os._exit(code)


def _read_all(pipes: list[tuple[int, int]], expected: bytes) -> None:
    for from_child, _ in pipes:
        assert os.read(from_child, 1) == expected


def test_forked_workers_reconnect_one_at_a_time(softhsm: SoftHsm, lock_path: Path,
                                                tmp_path: Path) -> None:
    """WORKERS forked workers whose token fails and comes back all reconnect (initialise
    and log in) only while they hold the lock: none signs while another process holds
    it, and all sign once it is free."""
    signer, _ = signer_for(softhsm)
    assert signs(signer)
    pids, pipes = [], []
    for _ in range(WORKERS):
        up_read, up_write = os.pipe()
        down_read, down_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            _worker(signer, up_write, down_read)
        pids.append(pid)
        pipes.append((up_read, down_write))
    try:
        _read_all(pipes, b"1")  # every worker re-initialised after the fork and signed
        with softhsm.away(tmp_path / "away"):
            for _, to_child in pipes:
                os.write(to_child, b"g")
            _read_all(pipes, b"2")  # every worker's sign failed: its module is broken
        held = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            for _, to_child in pipes:
                os.write(to_child, b"g")
            _read_all(pipes, b"3")  # every worker now tries to reconnect
            time.sleep(1.0)
            finished = [pid for pid in pids if os.waitpid(pid, os.WNOHANG)[0] != 0]
            assert finished == [], "a worker reconnected while another process held the lock"
        finally:
            os.close(held)
        codes, pids = exit_codes(pids, "every worker reconnected and signed"), []
        assert codes == [0] * WORKERS
    finally:
        for pid in pids:  # what exit_codes has not reaped (a recycled pid is not ours)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    assert signs(signer)  # the parent's own session is untouched


def test_a_refused_pin_is_not_sent_again(softhsm: SoftHsm, tmp_path: Path) -> None:
    """A PIN the token refused is never sent to it again by this process nor by the
    workers it forks: every Issuer.load (each worker's start, each reload) and every
    sweep of archived keys opens the archived token keys again, and a token locks after
    a few wrong PINs. Once the PIN file says something else, it is tried."""
    from acme_ca.pkcs11_uri import Pkcs11Uri
    from acme_ca.pki.keys import KeyType
    from acme_ca.pki.token import generate_token_key, open_token_signer
    from acme_ca.pki.token_session import close_modules
    from tests.pki.token_helpers import certificate_for

    public_key, _ = generate_token_key(Pkcs11Uri.parse(softhsm.uri()), softhsm.module,
                                       KeyType.EC_P256)
    certificate = certificate_for(public_key)
    close_modules()  # a new process: no login yet
    pin = tmp_path / "pin"
    pin.write_text("9999\n")
    uri = Pkcs11Uri.parse(f"pkcs11:token={softhsm.label};object=intermediate"
                          f"?pin-source=file:{pin}")
    with pytest.raises(PkiError, match="wrong PIN"):
        open_token_signer(uri, softhsm.module, certificate)
    with pytest.raises(PkiError, match=r"refused .* not sent again"):
        open_token_signer(uri, softhsm.module, certificate)
    pin.write_text(f"{softhsm.pin}\n")
    assert signs(open_token_signer(uri, softhsm.module, certificate))


async def test_a_reload_with_the_right_pin_ends_a_refused_reconnect(softhsm: SoftHsm,
                                                                    tmp_path: Path) -> None:
    """A reconnect met a wrong PIN (the PIN file changed while the token was away), so
    signs stop for good; the operator puts the right PIN back and reloads (SIGHUP:
    Issuer.load opens the key again, and logs in). The reloaded signer signs: a reload
    that loads, then fails every finalize, would be worse than a refused reload."""
    from tests.pki.token_helpers import certificate_for
    from tests.waiting import until

    signer, _ = signer_for(softhsm)
    with softhsm.away(tmp_path / "away"):
        with pytest.raises(PkiError):
            signer.sign(b"x")
        softhsm.pin_file.write_text("9999\n")

    def refused() -> bool:
        try:
            signer.sign(b"x")
        except PkiError as exc:
            return "wrong PIN" in str(exc)
        return False

    await until(refused, "the reconnect meets the wrong PIN")
    softhsm.pin_file.write_text(softhsm.pin + "\n")
    reloaded = token.open_token_signer(signer.uri, softhsm.module,
                                       certificate_for(signer.public_key))
    assert signs(reloaded)
