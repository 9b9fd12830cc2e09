"""`acme-ca serve` with [ca] intermediate_key on a PKCS#11 token (SoftHSM2): a token it
cannot use stops it at start with one line on stderr and a non-zero status, no
traceback, with one process or with workers (the parent checks before it forks); a
SIGHUP reload that cannot open the token key keeps the running intermediate. Real
processes, stopped by their pid."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.cli.serve import IssuerHolder, checked_reload, root_key_warning
from acme_ca.clock import SystemClock
from acme_ca.config import load_config
from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.keys import KeyType, load_key
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest, build_intermediate, build_root, ca_name
from acme_ca.pki.signer import sign_certificate
from acme_ca.pki.token import generate_token_key, open_token_signer
from acme_ca.store import open_store
from bench.http01 import free_port
from tests.cli.conftest import (
    ROOT_PASS,
    Run,
    create_database,
    secret,
    serving,
    until_serving,
)
from tests.cli.hsm import init_on_token
from tests.softhsm import SoftHsm
from tests.waiting import until

CHECKOUT = str(Path(__file__).resolve().parents[2])  # this checkout's acme_ca
WITHOUT_PKCS11 = (  # python-pkcs11 not installed: its import fails as it then would
    "import sys; sys.modules['pkcs11'] = None; from acme_ca.cli.main import main; "
    "sys.exit(main())"
)


def serve_config(tmp_path: Path, token: SoftHsm, uri: str, module: Path | None,
                 workers: int = 1) -> Path:
    """tmp_path/serve.toml: free ports, the key ``uri``, [ca] pkcs11_module ``module``
    (no such line when None)."""
    path = tmp_path / "serve.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{free_port()}"\nhostname = "localhost"\n'
        f'data_dir = "{tmp_path / "acme-ca-data"}"\nworkers = {workers}\n\n'
        f'[revocation]\nhttp_listen = "127.0.0.1:{free_port()}"\n\n'
        f'[ca]\nintermediate_key = "{uri}"\n'
        + (f'pkcs11_module = "{module}"\n' if module is not None else ""), encoding="utf-8")
    return path


def start_refused(config: Path, token: SoftHsm, program: list[str] | None = None,
                  status: int = 1) -> str:
    """Run `acme-ca serve` to its end: it must stop by itself with exit ``status``, one
    line on stderr and nothing it started left behind; that line."""
    argv = program or [sys.executable, "-m", "acme_ca"]
    process = subprocess.Popen([*argv, "--config", str(config), "serve"],
                               env={**token.env(), "PYTHONPATH": CHECKOUT},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == status, (process.returncode, err)
    assert err.count("\n") == 1 and err.startswith("acme-ca: error: "), err
    assert "Traceback" not in err
    with pytest.raises(ProcessLookupError):  # its group: no worker outlived it
        os.killpg(process.pid, 0)
    return err


@pytest.fixture
def ca_on_token(run: Run, tmp_path: Path, softhsm: SoftHsm) -> Path:
    return init_on_token(run, tmp_path, softhsm)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("case", "fragment", "status"),
    [
        ("wrong PIN", "wrong PIN for the token", 77),  # documented: the unit names it
        ("missing token", "no token matches", 1),
        ("missing object", "no private key on the token matches", 1),
        ("missing module", "does not exist", 1),
        ("no module configured", "set [ca] pkcs11_module (or module-path in the URI)", 1),
        ("python-pkcs11 not installed", "python-pkcs11", 1),
    ],
)
def test_a_token_serve_cannot_use_stops_it_at_start_in_one_line(
    ca_on_token: Path, tmp_path: Path, softhsm: SoftHsm, case: str, fragment: str,
    status: int, workers: int,
) -> None:
    """A refused PIN exits with its own status (77, what docs/acme-ca.service's
    RestartPreventExitStatus= names: a restart would try the PIN again, and a token
    locks after a few); the other failures exit 1, which systemd restarts (a token or a
    network HSM may come back, and no PIN is spent finding it missing)."""
    wrong = secret(tmp_path, "4321", "wrong.pin")
    label = softhsm.label
    uri, module = {
        "wrong PIN": (f"pkcs11:token={label};object=intermediate?pin-source=file:{wrong}",
                      softhsm.module),
        "missing token": (softhsm.uri().replace(f"token={label}", "token=elsewhere"),
                          softhsm.module),
        "missing object": (softhsm.uri("gone"), softhsm.module),
        "missing module": (softhsm.uri(), tmp_path / "libnothing.so"),
        "no module configured": (softhsm.uri(), None),
        "python-pkcs11 not installed": (softhsm.uri(), softhsm.module),
    }[case]
    config = serve_config(tmp_path, softhsm, uri, module, workers)
    program = ([sys.executable, "-c", WITHOUT_PKCS11]
               if case == "python-pkcs11 not installed" else None)
    line = start_refused(config, softhsm, program, status)
    assert fragment in line, line
    assert softhsm.pin not in line.replace(str(softhsm.pin_file), "")


def test_a_reload_that_cannot_open_the_token_key_keeps_the_running_intermediate(
    ca_on_token: Path, tmp_path: Path, softhsm: SoftHsm, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGHUP after the intermediate certificate was replaced by one whose key the token
    does not hold: one error line, and the running intermediate goes on signing."""
    config = load_config(tmp_path / "acme-ca.toml")
    holder = IssuerHolder(config, SystemClock())
    running = holder.current
    ca = ca_on_token / "ca"
    root = files.load_certificate(ca / "root-ca.crt")
    now = datetime.now(UTC).replace(microsecond=0)
    elsewhere = build_intermediate(
        root_cert=root, root_key=load_key(ca_on_token / "offline" / "root-ca.key",
                                          ROOT_PASS.encode()),
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        subject=running.certificate.subject, not_before=now, validity=timedelta(days=30))
    (ca / "intermediate-ca.crt").write_bytes(files.pem(elsewhere))
    (ca / "ca-chain.pem").write_bytes(files.pem(elsewhere, root))
    caplog.set_level(logging.INFO, "acme_ca")

    assert holder.candidate() is None
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert line.startswith("reload failed, keeping the current intermediate: ")
    assert softhsm.uri() in line and "\n" not in line  # the token's words follow its URI
    assert holder.current is running
    leaf = running.issue(LeafRequest(ec.generate_private_key(ec.SECP256R1()).public_key(),
                                     ("web.bluerobin.local",), (), now, now + timedelta(1),
                                     SERVER_AUTH))
    leaf.verify_directly_issued_by(running.certificate)


def test_a_reload_opens_the_token_key_off_the_event_loop(
    ca_on_token: Path, tmp_path: Path, softhsm: SoftHsm
) -> None:
    """SIGHUP loads the intermediate again, and a key on a token is found by a probe
    signature (after a login): a signature, so in the signing pool like every other
    (issue 14 item 1), not on the event loop. Here the token is slow (another thread
    holds its module for a second, as a PKCS#11 call that hangs would): the loop goes
    on answering meanwhile, and the reload then succeeds."""
    config = load_config(tmp_path / "acme-ca.toml")
    create_database(config)
    holder = IssuerHolder(config, SystemClock())
    module = holder.current.signer._module  # type: ignore[attr-defined]
    held, release = threading.Event(), threading.Event()

    def slow_token() -> None:
        with module.lock:
            held.set()
            release.wait(30)

    async def reload_while_ticking() -> tuple[bool, float]:
        store = await open_store(config.storage.url)
        ticks = [time.monotonic()]

        async def tick() -> None:
            while True:
                await asyncio.sleep(0.01)
                ticks.append(time.monotonic())

        ticker = asyncio.create_task(tick())
        try:
            changed = await checked_reload(holder, store, datetime.now(UTC))
            ticks.append(time.monotonic())  # the loop's first moment after the reload
        finally:
            ticker.cancel()
            await store.close()
        return changed, max(b - a for a, b in itertools.pairwise(ticks))

    thread = threading.Thread(target=slow_token)
    thread.start()
    timer = threading.Timer(1.0, release.set)
    try:
        assert held.wait(30)
        timer.start()
        started = time.monotonic()
        changed, longest_gap = asyncio.run(reload_while_ticking())
    finally:
        release.set()
        timer.cancel()
        thread.join()
    assert time.monotonic() - started >= 0.9  # the reload did wait for the token
    assert changed is False  # the same intermediate, loaded again
    assert longest_gap < 0.5, f"the event loop stalled {longest_gap:.2f} s"


def root_on_token(token: SoftHsm, ca: Path) -> str:
    """A self-signed root whose key is on the token, written as the CA's root,
    intermediate and chain (a [ca] that points the server at the root itself); its URI."""
    uri = Pkcs11Uri.parse(token.uri("root"))
    public, pinned = generate_token_key(uri, token.module, KeyType.EC_P256)
    now = datetime.now(UTC).replace(microsecond=0)
    holder = build_root(ec.generate_private_key(ec.SECP256R1()), ca_name("x", None, None), now)
    carrier = x509.CertificateBuilder(  # only its public key matters to open_token_signer
        holder.subject, holder.subject, public, 1, now, now + timedelta(1)
    ).sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    signer = open_token_signer(pinned, token.module, carrier)
    name = ca_name("Root on the token", None, None)
    root = sign_certificate(
        x509.CertificateBuilder(name, name, public, x509.random_serial_number(), now,
                                now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                     False), critical=True),
        signer)
    for name_ in ("root-ca.crt", "intermediate-ca.crt", "ca-chain.pem"):
        (ca / "ca" / name_).write_bytes(files.pem(root))
    return str(pinned)


def test_the_root_key_checks_work_with_a_token_key(
    ca_on_token: Path, tmp_path: Path, softhsm: SoftHsm
) -> None:
    """`serve` warns of the root key in its data directory whatever the intermediate key
    is, and refuses a [ca] intermediate_key that is the root's own key (on the token)."""
    config = load_config(tmp_path / "acme-ca.toml")
    assert root_key_warning(config) is not None
    root_uri = root_on_token(softhsm, ca_on_token)
    config = load_config(None, {"server.data_dir": str(ca_on_token),
                                "ca.intermediate_key": root_uri,
                                "ca.pkcs11_module": str(softhsm.module)})
    with pytest.raises(PkiError, match="is the root key") as caught:
        IssuerHolder(config, SystemClock())
    assert "\n" not in str(caught.value)


def listeners(port: int) -> int:
    """The sockets listening on 127.0.0.1:``port`` (with SO_REUSEPORT, one per worker)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return sum(row[1] == f"0100007F:{port:04X}" and row[3] == "0A" for row in rows)


def test_workers_on_a_softhsm2_token_all_start(tmp_path: Path, softhsm: SoftHsm) -> None:
    """4 workers open the token one after another: SoftHSM2 re-writes its token file at
    each login, and 4 logins at once left a worker without its token one start in two.
    Started, they keep serving until SIGTERM, which stops them all with status 0. The CA
    is made by `init` in a process of its own, as an operator would (with the token
    opened in this test's process instead, the logins did not collide)."""
    config = serve_config(tmp_path, softhsm, softhsm.uri(), softhsm.module, workers=4)
    env = {**softhsm.env(), "PYTHONPATH": CHECKOUT}
    acme_ca = [sys.executable, "-m", "acme_ca", "--config", str(config)]
    subprocess.run([*acme_ca, "init", "--passphrase-file", str(secret(tmp_path, ROOT_PASS)),
                    "--key-type", "ec-p384"], env=env, check=True, capture_output=True,
                   timeout=120)
    port = int(tomllib.loads(config.read_text())["server"]["listen"].rsplit(":", 1)[1])
    with serving(config, env) as process:
        until_serving(process)  # worker 0's line; each worker listens once it has the key
        asyncio.run(until(lambda: process.poll() is not None or listeners(port) == 4,
                          "the 4 workers listen, or serve ended", 60))
        assert process.stderr is not None
        assert process.poll() is None, process.stderr.read()
