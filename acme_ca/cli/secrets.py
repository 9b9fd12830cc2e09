"""Where passphrases come from: a file, an environment variable, or a prompt."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from acme_ca.errors import ConfigError

ROOT_PASSPHRASE_ENV = "ACME_CA_ROOT_PASSPHRASE"  # noqa: S105 - a variable name
INTERMEDIATE_PASSPHRASE_ENV = "ACME_CA_INTERMEDIATE_PASSPHRASE"  # noqa: S105
MIN_NEW_PASSPHRASE = 8


def read_passphrase_file(path: Path) -> bytes:
    """The first line of a file, without its line ending."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    passphrase = data.splitlines()[0] if data.strip() else b""
    if not passphrase:
        raise ConfigError(f"passphrase file {path} is empty")
    return passphrase


def passphrase(
    *, file: Path | None, env: str, prompt: str | None, new: bool = False, required: bool = True
) -> bytes | None:
    """From `file`, else $`env`, else an interactive prompt (asked twice for a new one).

    Returns None when nothing is given and `required` is false.
    """
    value: bytes | None = None
    if file is not None:
        value = read_passphrase_file(file)
    elif os.environ.get(env):
        value = os.environ[env].encode()
    elif prompt and sys.stdin.isatty():
        value = getpass.getpass(f"{prompt}: ").encode()
        if new and getpass.getpass(f"{prompt} (again): ").encode() != value:
            raise ConfigError("the passphrases do not match")
    if not value:
        if not required:
            return None
        raise ConfigError(
            f"no passphrase given: use --passphrase-file, set {env}, "
            "or run in a terminal to be asked"
        )
    if new and len(value) < MIN_NEW_PASSPHRASE:
        raise ConfigError(f"a new passphrase needs at least {MIN_NEW_PASSPHRASE} characters")
    return value


def intermediate_passphrase(file: Path | None) -> bytes | None:
    """The intermediate key's passphrase: a file (flag or [ca] key), else the environment."""
    return passphrase(file=file, env=INTERMEDIATE_PASSPHRASE_ENV, prompt=None, required=False)
