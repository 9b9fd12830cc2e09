"""docs/services.md, run: the guide's NATS and PostgreSQL, each certificate from ACME.

`Guide` reads the page's marked blocks and makes them runnable on this machine with
three kinds of substitution only: the CA's URL (a live `acme-ca serve` on loopback),
the directories (certbot's, the root's, the servers'), and the servers' ports. certbot
itself runs each block's command line unchanged: where it keeps its files, where it
answers http-01 (127.0.0.1:<a free port>, where the CA's [validation] hosts table sends
the page's names) come from a cli.ini in $XDG_CONFIG_HOME, which certbot reads first.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.http01 import free_ports
from integration.clients import AcmeServer
from integration.conftest import clean_env, revocation_table, run, serving_config
from tests.required import require_program

PAGE = Path(__file__).resolve().parent.parent / "docs" / "services.md"
DIRECTORY = "https://ca.bluerobin.local/directory"
ROOT = "/usr/local/share/ca-certificates/bluerobin-root.crt"
LETSENCRYPT = "/etc/letsencrypt"
# Every name the page orders a certificate for: http-01 for each goes to 127.0.0.1.
NAMES = ("nats.bluerobin.local", "worker1.bluerobin.local", "db.bluerobin.local",
         "app.bluerobin.local")


def block(name: str) -> str:
    """The page's block marked `<!-- services: NAME -->`, as written."""
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- services: {re.escape(name)} -->\n```\w*\n(.*?)```", text, re.S)
    assert match, f"docs/services.md lost its {name} block"
    return match.group(1)


def substitute(text: str, guide: str, here: str) -> str:
    """`text` with the guide's `guide` replaced by `here`; fails if the guide's text is
    not there (the page changed: the test would run something else than it says)."""
    assert guide in text, f"docs/services.md no longer says {guide!r}"
    return text.replace(guide, here)


@contextlib.contextmanager
def serving_ca(workdir: Path) -> Iterator[AcmeServer]:
    """`acme-ca serve` for bluerobin.local whose http-01 goes to 127.0.0.1:<http01_port>
    for NAMES; stopped by pid afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    port, http01_port = free_ports(2)
    hosts = ", ".join(f'"{name}" = "127.0.0.1"' for name in NAMES)
    config = workdir / "acme-ca.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nhostname = "localhost"\n'
        f'data_dir = "{data_dir}"\n\n[policy]\nallowed_domains = ["bluerobin.local"]\n'
        f'{revocation_table()}\n'
        f'[validation]\nhttp01_port = {http01_port}\nallowed_networks = ["127.0.0.0/8"]\n'
        f"hosts = {{{hosts}}}\n",
        encoding="utf-8",
    )
    with serving_config(config, data_dir, port) as server:
        yield AcmeServer(server, http01_port)


class Guide:
    """The page's blocks with this test's CA, directories and ports in place of the
    guide's; `sh` runs a shell block with certbot (this virtualenv's) and openssl."""

    def __init__(self, acme: AcmeServer, home: Path, root: Path | None = None) -> None:
        self.bin = Path(require_program(str(Path(sys.executable).parent / "certbot"))).parent
        self.acme, self.home = acme, home
        self.letsencrypt = home / "letsencrypt"
        self.root = root or acme.root_cert  # where the guide's root is, here
        self.replacements: dict[str, str] = {}
        for guide, here in ((DIRECTORY, acme.directory), (ROOT, str(self.root)),
                            (LETSENCRYPT, str(self.letsencrypt))):
            self.replace(guide, here)
        config = home / "xdg" / "letsencrypt"
        config.mkdir(parents=True, exist_ok=True)
        (config / "cli.ini").write_text(
            f"config-dir = {self.letsencrypt}\nwork-dir = {home / 'certbot-work'}\n"
            f"logs-dir = {home / 'certbot-logs'}\nhttp-01-port = {acme.http01_port}\n"
            "http-01-address = 127.0.0.1\n",
            encoding="utf-8",
        )

    def replace(self, guide: str, here: str) -> None:
        """In every block, `here` for the guide's `guide` (which the page must say)."""
        substitute(PAGE.read_text(encoding="utf-8"), guide, here)
        self.replacements[guide] = here

    def text(self, name: str, *changes: tuple[str, str]) -> str:
        """Block `name`, `changes` made to the page's own words first, then this run's
        replacements (so that a change never touches a path the run made: a temporary
        directory's random name may hold the changed word)."""
        text = block(name)
        for guide, here in changes:
            text = substitute(text, guide, here)
        for guide, here in self.replacements.items():
            text = text.replace(guide, here)
        return text

    def live(self, name: str) -> Path:
        return self.letsencrypt / "live" / name

    def sh(self, name: str, *changes: tuple[str, str]) -> None:
        """Block `name` (with `changes` made to it) with bash -eu, in `home`, this
        Python's bin first in PATH; fails the test if it exits non-zero."""
        env = clean_env({"PATH": f"{self.bin}:{os.environ['PATH']}",
                         "XDG_CONFIG_HOME": str(self.home / "xdg"),
                         "HOME": str(self.home)})
        script = self.text(name, *changes)
        result = run(["bash", "-eu", "-o", "pipefail", "-c", script], cwd=self.home, env=env,
                     check=False)
        if result.returncode != 0:
            pytest.fail(f"docs/services.md {name} exited {result.returncode}:\n{script}\n"
                        f"stdout: {result.stdout}\nstderr: {result.stderr}\n{self.acme.logs()}")
