"""The acme-ca builds a comparison runs side by side: where the intermediate key is
(a file, or a SoftHSM2 token the run makes), its type, and which source tree.

``python -m bench compare`` runs one build by default: this tree's acme-ca, its CA
bootstrapped by ``serve`` on first start (a P-384 intermediate key in a file), named
"acme-ca" in the records. ``--intermediate-key file,token``,
``--intermediate-key-type ec-p384,ec-p256`` and ``--acme-ca-tree LABEL=PATH`` ask for
more: one build per combination, each named for what sets it apart, e.g.
"acme-ca (token key, ec-p256)" or "acme-ca[4b2e502] (file key)".

A build with a key type or a token key runs ``acme-ca init`` before ``serve`` (an
EC P-384 root: its type only changes the chain, not an issuance). A token build makes
a token of its own for each run with ``softhsm2-util`` (tests/softhsm.py: label
"acme-ca", PIN in a 0600 file), has ``init --intermediate-key-uri`` generate the
intermediate key on it, and names it in ``[ca] intermediate_key`` with
``pkcs11_module``; only the acme-ca processes see its ``SOFTHSM2_CONF``. SoftHSM2 is
a library inside the server process, so its signing is in the server's CPU.
A tree is another checkout's source (``git archive COMMIT acme_ca | tar -x -C DIR``)
run through ``PYTHONPATH`` with this virtualenv's packages. ``--acme-ca-python
LABEL=PATH`` runs this tree under another interpreter (a virtualenv of another Python
version with acme-ca's dependencies), named "acme-ca{LABEL}".
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KEYS = ("file", "token")
KEY_TYPES = ("ec-p256", "ec-p384", "rsa2048", "rsa3072", "rsa4096")  # acme-ca init's
ROOT_KEY_TYPE = "ec-p384"
ROOT_PASSPHRASE = "bench root passphrase\n"  # noqa: S105 - a throwaway root of one run
INIT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Build:
    """One acme-ca of a comparison. ``name`` is its server name in the records."""

    name: str = "acme-ca"
    key: str = "file"  # "file" | "token"
    key_type: str | None = None  # None: serve's first-start bootstrap picks (ec-p384)
    tree: Path | None = None  # None: this checkout's acme_ca
    python: Path | None = None  # None: the bench's own interpreter (sys.executable)

    @property
    def interpreter(self) -> str:
        return str(self.python) if self.python is not None else sys.executable

    @property
    def needs_init(self) -> bool:
        return self.key == "token" or self.key_type is not None


DEFAULT = Build()


def parse_builds(keys: str, key_types: str | None, trees: list[str] | None,
                 pythons: list[str] | None = None) -> list[Build]:
    """Every combination of tree (this one first), key place and key type, then this
    tree's default build under each other interpreter; ValueError with one line for an
    unknown key place or type, a tree that is not LABEL=PATH holding acme_ca/, or an
    interpreter that is not LABEL=PATH to an executable."""
    places = _names(keys, KEYS, "--intermediate-key")
    types: list[str | None] = (
        list(_names(key_types, KEY_TYPES, "--intermediate-key-type")) if key_types else [None]
    )
    sources: list[tuple[str, Path | None]] = [("", None)]
    for spec in trees or []:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            raise ValueError(f"--acme-ca-tree {spec!r}: LABEL=PATH expected")
        if not (Path(path) / "acme_ca" / "__init__.py").exists():
            raise ValueError(f"--acme-ca-tree {spec!r}: no acme_ca/ package in {path}")
        sources.append((label, Path(path).resolve()))
    combos = list(itertools.product(sources, places, types))
    others = [_interpreter(spec) for spec in pythons or []]
    if len(combos) == 1 and combos[0] == (("", None), "file", None):
        return [DEFAULT, *others]
    builds = []
    for (label, tree), place, key_type in combos:
        what = ", ".join([f"{place} key", *([key_type] if key_type else [])])
        name = f"acme-ca{f'[{label}]' if label else ''} ({what})"
        builds.append(Build(name, place, key_type, tree))
    return builds + others


def _interpreter(spec: str) -> Build:
    """``--acme-ca-python LABEL=PATH``: this tree's acme-ca run by another Python (a
    virtualenv's, with acme-ca's dependencies installed), named acme-ca{LABEL}."""
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise ValueError(f"--acme-ca-python {spec!r}: LABEL=PATH expected")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        raise ValueError(f"--acme-ca-python {spec!r}: {path} is not an executable")
    here = Path(__file__).resolve().parent.parent
    return Build(f"acme-ca{{{label}}}", tree=here, python=Path(path))


def _names(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    wrong = [n for n in names if n not in allowed]
    if wrong or not names:
        raise ValueError(f"{flag}: {', '.join(wrong) or 'nothing'} (one or more of "
                         f"{', '.join(allowed)}, comma-separated)")
    return list(dict.fromkeys(names))


def environment(build: Build, token_conf: Path | None) -> dict[str, str]:
    """What an acme-ca process of ``build`` adds to the bench's environment."""
    extra = {}
    if build.tree is not None:
        extra["PYTHONPATH"] = str(build.tree)
    if token_conf is not None:
        extra["SOFTHSM2_CONF"] = str(token_conf)
    return extra


def make_token(directory: Path) -> tuple[Path, str, Path]:
    """A fresh SoftHSM2 token in ``directory``: (its softhsm2.conf, the URI of the
    intermediate key's object with its PIN file, the PKCS#11 module). RuntimeError with
    one line when softhsm2 or python-pkcs11 is missing."""
    import pytest  # tests/softhsm.py reports what is missing through pytest's outcomes

    from tests.softhsm import SoftHsm

    try:
        token = SoftHsm.create(directory)
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        raise RuntimeError(f"a token key needs SoftHSM2: {exc}") from None
    return token.conf, token.uri("intermediate"), token.module


def ca_config(uri: str, module: Path) -> str:
    """The ``[ca]`` lines of a token build (the other CA files keep their defaults)."""
    return f'\n[ca]\nintermediate_key = "{uri}"\npkcs11_module = "{module}"\n'


def run_init(build: Build, config: Path, workdir: Path, env: dict[str, str],
             token: tuple[str, Path] | None) -> None:
    """``acme-ca init`` for ``build``: root and intermediate, the intermediate's key on
    the token when ``token`` (its URI and module) is given. RuntimeError with its
    output when it fails."""
    passphrase = workdir / "root-passphrase"
    passphrase.write_text(ROOT_PASSPHRASE, encoding="utf-8")
    passphrase.chmod(0o600)
    argv = [build.interpreter, "-m", "acme_ca", "--config", str(config), "init",
            "--passphrase-file", str(passphrase), "--key-type", ROOT_KEY_TYPE]
    if build.key_type is not None:
        argv += ["--intermediate-key-type", build.key_type]
    if token is not None:
        argv += ["--intermediate-key-uri", token[0], "--pkcs11-module", str(token[1])]
    done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=INIT_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{build.name}: acme-ca init exited {done.returncode}:\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
