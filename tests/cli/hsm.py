"""What the HSM tests of init, renew and serve share: a CA made by `init` with its
intermediate key on the test's SoftHSM2 token, and a look at the token's objects from
a process of their own (a login is per process: the test's own process is logged in
through acme_ca's module already)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from acme_ca.pki import files
from tests.cli.conftest import FAST, ROOT_PASS, Run, secret
from tests.softhsm import SoftHsm

LIST_OBJECTS = """
import json, sys
import pkcs11
from pkcs11 import Attribute, ObjectClass
token = pkcs11.lib(sys.argv[1]).get_token(token_label=sys.argv[2])
rows = []
with token.open(user_pin=sys.argv[3]) as session:
    for kind in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        for found in session.get_objects({Attribute.CLASS: kind}):
            row = {"class": kind.name, "label": found[Attribute.LABEL],
                   "id": bytes(found[Attribute.ID]).hex()}
            if kind == ObjectClass.PRIVATE_KEY:
                row.update({name: bool(found[getattr(Attribute, name.upper())])
                            for name in ("extractable", "sensitive", "never_extractable")})
            rows.append(row)
print(json.dumps(rows))
"""


def token_objects(token: SoftHsm) -> list[dict[str, object]]:
    """The key objects on ``token``: class, label, id (hex) and, for private keys,
    CKA_EXTRACTABLE, CKA_SENSITIVE, CKA_NEVER_EXTRACTABLE."""
    listed = subprocess.run(
        [sys.executable, "-c", LIST_OBJECTS, str(token.module), token.label, token.pin],
        env=token.env(), capture_output=True, text=True, check=True, timeout=60)
    return json.loads(listed.stdout)


def private_keys(token: SoftHsm) -> list[dict[str, object]]:
    return [o for o in token_objects(token) if o["class"] == "PRIVATE_KEY"]


def token_config(tmp_path: Path, token: SoftHsm, uri: str | None = None,
                 extra: str = "") -> Path:
    """tmp_path/acme-ca.toml: the data directory tmp_path/acme-ca-data, the intermediate
    key on ``token`` ([ca] intermediate_key ``uri``, default its "intermediate")."""
    path = tmp_path / "acme-ca.toml"
    path.write_text(
        f'[server]\ndata_dir = "{tmp_path / "acme-ca-data"}"\n\n'
        f'[ca]\nintermediate_key = "{uri or token.uri()}"\n'
        f'pkcs11_module = "{token.module}"\n' + extra, encoding="utf-8")
    return path


def init_on_token(run: Run, tmp_path: Path, token: SoftHsm, *flags: object) -> Path:
    """`init` with the configuration ``token_config`` writes: the data directory."""
    config = token_config(tmp_path, token)
    code, _, err = run("--config", config, "init", "--passphrase-file",
                       secret(tmp_path, ROOT_PASS), *FAST, *flags)
    assert code == 0, err
    return tmp_path / "acme-ca-data"


def private_key_files(directory: Path, passphrases: tuple[bytes | None, ...]) -> list[Path]:
    """Every file under ``directory`` that holds a private key of any kind, tried with
    each of ``passphrases``: as PEM and as DER (PKCS#1, SEC1, PKCS#8, OpenSSH)."""
    loaders = (serialization.load_pem_private_key, serialization.load_der_private_key,
               serialization.load_ssh_private_key)
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(_loads(loader, data, passphrase)
               for loader in loaders for passphrase in passphrases):
            found.append(path)
    return found


def _loads(loader: Callable[..., object], data: bytes, passphrase: bytes | None) -> bool:
    try:
        loader(data, password=passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def openssl_verify(root: Path, untrusted: Path, leaf: Path) -> str:
    """``openssl verify`` of ``leaf`` up to ``root`` through ``untrusted``: its output."""
    checked = subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(untrusted), str(leaf)],
        capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return checked.stdout


def pem_of(path: Path, *certificates: object) -> Path:
    path.write_bytes(files.pem(*certificates))  # type: ignore[arg-type]
    return path
