"""What pyproject.toml promises: every optional extra installs something the code uses.

`pip install 'acme-ca[hsm]'` that installs python-pkcs11 while nothing imports it tells
an operator the CA can keep its key in an HSM when it cannot.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The module each extra's distributions are imported as.
IMPORT_NAMES = {"python-pkcs11": "pkcs11", "asyncpg": "asyncpg"}
# Extras for the tools around the code, not the code itself.
TOOLING = {"test"}
# Announced before their code, each with the refusal a user meets instead (none now:
# postgres has its backend, acme_ca/store/postgres/).
AHEAD_OF_THEIR_CODE: set[str] = set()


def imported_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "acme_ca").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_every_extra_installs_something_the_code_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    imported = imported_modules()
    unused = {}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra in TOOLING | AHEAD_OF_THEIR_CODE:
            continue
        names = [re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] for r in requirements]
        modules = [IMPORT_NAMES.get(name, name.replace("-", "_")) for name in names]
        if not any(module in imported for module in modules):
            unused[extra] = requirements
    assert unused == {}, f"extras with no code behind them: {unused}"
