"""The README's "Keeping the intermediate key on an HSM", run as written.

The fenced blocks after `<!-- hsm: token -->`, `init`, `serve`, `check` and `renew`
run in a fresh directory holding the Quick start's `.venv` (a symlink to the virtual
environment running these tests, where python-pkcs11 is already installed, so the
walk-through's `pip install -q python-pkcs11` finds it): `token` and `init` in one
`bash -eu -o pipefail` (the README reads as one terminal: `init` needs the
`SOFTHSM2_CONF` that `token` exports), `serve` as a background process stopped by pid,
`check` and `renew` each from a second terminal, a script file of its own, without
`SOFTHSM2_CONF` (the blocks that need it say so). Between `renew` and the server
switching to the new intermediate, the test sends the SIGHUP that the README says in
words. The only substitution: the ports 8555 and 8556 become free ports from the OS.

What the test checks besides each block exiting 0: SoftHSM2 holds the key pairs
(sensitive, never extractable: integration/test_hsm.py's `token_keys`), no file of the
data directory holds the intermediate's private key, openssl says `Verification: OK`
for the server's TLS certificate (signed by the token at start), and after the renewal
and the reload the server serves the new intermediate, whose key is a second one on
the token, with the same label.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from integration.conftest import _serving, clean_env, run, until
from integration.test_hsm import private_keys_in, spki, token_keys
from integration.test_readme_walkthrough import README, readme_ports, readme_text
from tests.required import missing, require_program
from tests.softhsm import SoftHsm

pytestmark = pytest.mark.integration

BLOCK = re.compile(r"<!-- hsm: (\w+) -->\n```sh\n(.*?)\n```", re.DOTALL)
MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")  # the path the README names
DATA = "acme-ca-hsm"


def hsm_blocks(ports: dict[str, int]) -> dict[str, str]:
    """The README's hsm blocks, with the test's ports for 8555 and 8556."""
    blocks = dict(BLOCK.findall(README.read_text(encoding="utf-8")))
    assert set(blocks) == {"token", "init", "serve", "check", "renew"}, sorted(blocks)
    assert "8555" in blocks["init"] and "8556" in blocks["init"]
    assert "8555" in blocks["check"]
    assert str(MODULE) in blocks["init"]
    return {name: readme_text(text, ports) for name, text in blocks.items()}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh directory with the Quick start's `.venv`; SoftHSM2 and python-pkcs11 are
    there (else skipped, or failed under CI)."""
    require_program("softhsm2-util")
    require_program("openssl")
    if not MODULE.exists():
        missing(f"{MODULE} is not there (Debian's softhsm2 installs it)")
    try:
        import pkcs11  # noqa: F401  (the hsm extra)
    except ImportError:
        missing("python-pkcs11 is not installed (pip install -e '.[hsm]')")
    with tempfile.TemporaryDirectory(prefix="readme-hsm-") as name:
        path = Path(name)
        (path / ".venv").symlink_to(sys.prefix)
        require_program(str(path / ".venv" / "bin" / "acme-ca"))
        yield path


def env(workdir: Path) -> dict[str, str]:
    """A terminal's environment: no SOFTHSM2_CONF of the test's (the blocks set it)."""
    return {k: v for k, v in clean_env({"HOME": str(workdir)}).items()
            if k != "SOFTHSM2_CONF"}


def terminal(script: str, workdir: Path, name: str) -> str:
    """``script`` as a file run by `bash -eu -o pipefail` in ``workdir``; its stdout and
    stderr. (A file, not `bash -c`: a process's arguments never hold the blocks.)"""
    path = workdir / f"{name}.sh"
    path.write_text(script + "\n", encoding="utf-8")
    result = run(["bash", "-eu", "-o", "pipefail", path], cwd=workdir, env=env(workdir),
                 check=False)
    if result.returncode != 0:
        logs = "\n".join(p.read_text(errors="replace")
                         for p in sorted(workdir.glob(f"{DATA}.serve-*")))
        pytest.fail(f"README hsm {name} exited {result.returncode}:\n{script}\n"
                    f"stdout: {result.stdout}\nstderr: {result.stderr}\n{logs}")
    return result.stdout + result.stderr


def token_of(workdir: Path) -> SoftHsm:
    """The token the walk-through made, as tests/softhsm.py describes one."""
    softhsm = workdir / "softhsm"
    pin_file = workdir / "acme-ca.pin"
    return SoftHsm(softhsm / "softhsm2.conf", softhsm / "tokens", MODULE, "acme-ca",
                   pin_file.read_text().strip(), pin_file)


def test_the_readme_hsm_walkthrough_works_as_written(workdir: Path) -> None:
    ports = readme_ports()
    blocks = hsm_blocks(ports)
    data = workdir / DATA

    said = terminal(blocks["token"] + "\n" + blocks["init"], workdir, "token-init")
    assert said.split()[-3:] == ["ca-chain.pem", "intermediate-ca.crt", "root-ca.crt"], said
    for secret in ("acme-ca.pin", "acme-ca.so-pin", "root.pass"):
        assert (workdir / secret).stat().st_mode & 0o777 == 0o600, secret
    hsm = token_of(workdir)
    first = x509.load_pem_x509_certificate((data / "ca" / "intermediate-ca.crt").read_bytes())
    public, private = token_keys(hsm)
    assert [spki(k) for k in public] == [spki(first.public_key())]
    assert private == [{"sensitive": True, "extractable": False, "never_extractable": True,
                        "sign": True}]

    serve = ["bash", "-c", blocks["serve"]]  # bash execs the one command: its pid is serve's
    with _serving([], workdir, data, ports["8555"], program=serve,
                  env=env(workdir)) as server:
        checked = terminal(blocks["check"], workdir, "check")
        assert f"{DATA}/ca/intermediate-ca.crt: OK" in checked, checked
        assert "Verification: OK" in checked, checked

        old_chain = server.get("/roots/chain.pem").body
        terminal(blocks["renew"], workdir, "renew")
        os.kill(server.process.pid, signal.SIGHUP)
        until(lambda: server.get("/roots/chain.pem").body != old_chain,
              "the server switched to the renewed intermediate")
        renewed = x509.load_pem_x509_certificate(
            (data / "ca" / "intermediate-ca.crt").read_bytes())
        assert renewed.public_key() != first.public_key()
        assert x509.load_pem_x509_certificates(server.get("/roots/chain.pem").body)[0] == \
            renewed
        public, private = token_keys(hsm)
        assert sorted(spki(k) for k in public) == sorted(
            spki(c.public_key()) for c in (first, renewed))
        assert len(private) == 2 and all(not p["extractable"] for p in private), private
        assert server.process.poll() is None

    passphrase = (workdir / "root.pass").read_bytes().rstrip(b"\n")
    found = private_keys_in(data, [passphrase])
    assert "offline/root-ca.key" in found and "tls/server.key" in found, sorted(found)
    for name, keys in found.items():
        assert not {spki(first.public_key()), spki(renewed.public_key())} & set(keys), name


OPERATIONS = README.parent / "docs" / "operations.md"
UNIT = README.parent / "docs" / "acme-ca.service"


def test_the_systemd_drop_in_for_a_token_verifies(tmp_path: Path) -> None:
    """docs/operations.md's drop-in for a token, beside docs/acme-ca.service (where
    systemd reads drop-ins: acme-ca.service.d/), and `systemd-analyze verify` has
    nothing to say; it keeps the data directory writable and adds the token's."""
    analyze = require_program("systemd-analyze")
    (dropin,) = re.findall(r"<!-- hsm: systemd-dropin -->\n```ini\n(.*?)\n```",
                           OPERATIONS.read_text(encoding="utf-8"), re.DOTALL)
    assert "ReadWritePaths=/var/lib/acme-ca /var/lib/softhsm/tokens" in dropin.splitlines()
    installed = Path(sys.executable).parent / "acme-ca"
    unit = tmp_path / "acme-ca.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/acme-ca", str(installed)))
    (tmp_path / "acme-ca.service.d").mkdir()
    (tmp_path / "acme-ca.service.d" / "hsm.conf").write_text(dropin + "\n")
    result = run([analyze, "verify", unit], cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    bogus = tmp_path / "acme-ca.service.d" / "bogus.conf"  # the check can fail
    bogus.write_text("[Service]\nNoSuchSetting=1\n")
    assert "NoSuchSetting" in run([analyze, "verify", unit], cwd=tmp_path, check=False).stderr
