"""A SoftHSM2 token of the test's own: what the HSM tests sign with.

``SoftHsm.create(directory)`` writes a softhsm2.conf whose token directory is inside
``directory`` and initialises one token in it with ``softhsm2-util`` (the real program,
Debian's softhsm2; ``add_token`` makes another beside it), so nothing is shared with the
machine or another test. A process
finds the token through ``SOFTHSM2_CONF``: ``env()`` for the subprocesses a test
starts, the ``softhsm`` fixture (tests/conftest.py) sets it for the test's own process.
Without softhsm2 the test is skipped, except under CI (tests/required.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.required import missing, require_program

MODULE_CANDIDATES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
)
LABEL = "acme-ca"
PIN = "1234"
SO_PIN = "12345678"


def softhsm_module() -> Path:
    """The SoftHSM2 PKCS#11 library; ``missing`` without it."""
    for path in MODULE_CANDIDATES:
        if path.exists():
            return path
    missing("SoftHSM2's PKCS#11 module is not installed (Debian package softhsm2)")


@dataclass(frozen=True)
class SoftHsm:
    """One initialised token: its label, user PIN (also in ``pin_file``, 0600), and the
    configuration file that points SoftHSM2 at it."""

    conf: Path
    tokens: Path
    module: Path
    label: str
    pin: str
    pin_file: Path

    @classmethod
    def create(cls, directory: Path, label: str = LABEL, pin: str = PIN) -> SoftHsm:
        util = require_program("softhsm2-util")
        module = softhsm_module()
        try:
            import pkcs11  # noqa: F401  (the hsm extra)
        except ImportError:
            missing("python-pkcs11 is not installed (pip install -e '.[hsm]')")
        tokens = directory / "tokens"
        tokens.mkdir(parents=True)
        conf = directory / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                        "log.level = ERROR\nslots.removable = false\n")
        _init_token(util, conf, label, pin)
        pin_file = directory / "pin"
        pin_file.write_text(pin + "\n")
        pin_file.chmod(0o600)
        return cls(conf, tokens, module, label, pin, pin_file)

    def add_token(self, label: str | None = None) -> None:
        """Another token beside this one, in the next free slot: labelled ``label``
        (this token's own label by default), with the same PINs."""
        _init_token(require_program("softhsm2-util"), self.conf, label or self.label,
                    self.pin)

    def env(self) -> dict[str, str]:
        """The environment of a subprocess that must find this token."""
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}

    def uri(self, obj: str = "intermediate", *, pin: bool = True) -> str:
        """An RFC 7512 URI of key ``obj`` on this token, its PIN read from ``pin_file``."""
        query = f"?pin-source=file:{self.pin_file}" if pin else ""
        return f"pkcs11:token={self.label};object={obj}{query}"

    def object_files(self) -> list[Path]:
        """The token's object files (what ``away`` moves to make the token fail)."""
        return sorted(self.tokens.rglob("*.object"))

    @contextmanager
    def away(self, where: Path) -> Iterator[None]:
        """The token's object files moved to ``where`` for the block (the token, as
        SoftHSM2 sees it, is gone: a sign raises, a reconnect finds no token), then
        moved back."""
        moved = []
        for path in self.object_files():
            target = where / path.relative_to(self.tokens)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            moved.append((target, path))
        assert moved, "the token has no object files"
        try:
            yield
        finally:
            for target, path in moved:
                shutil.move(target, path)


def _init_token(util: str, conf: Path, label: str, pin: str) -> None:
    """``softhsm2-util --init-token --free`` in the token directory of ``conf``; then a
    library this process loaded reads SOFTHSM2_CONF and its token files again."""
    subprocess.run([util, "--init-token", "--free", "--label", label, "--pin", pin,
                    "--so-pin", SO_PIN], env={**os.environ, "SOFTHSM2_CONF": str(conf)},
                   check=True, capture_output=True)
    from acme_ca.pki.token_session import close_modules

    close_modules()
