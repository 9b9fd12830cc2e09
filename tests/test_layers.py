"""The import rules of the design: imports point down the picture only.

    cli > api > authority > (validation | pki | store) > domain
        > (errors | clock | config | encoding | metrics | pkcs11_uri)

api never touches the store or the PKI directly; validation and pki never touch the
store; pki knows nothing of ACME (so the offline commands can use it alone); the
authority never imports aiohttp's web layer; only the store touches a database
driver. A relative import counts as what it names (resolved against its package).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "acme_ca"
BASE = {"errors", "clock", "config", "config_ca", "config_networks", "config_policy",
        "config_revocation", "config_operations", "config_values", "encoding", "metrics",
        "pkcs11_uri"}
ALLOWED: dict[str, set[str]] = {
    "api": {"api", "authority", "domain"} | BASE,
    "authority": {"authority", "validation", "pki", "store", "domain"} | BASE,
    "validation": {"validation", "domain"} | BASE,
    "pki": {"pki"} | BASE,
    "store": {"store", "domain"} | BASE,
    "domain": {"domain", "errors", "encoding"},
    "errors": set(),
    "clock": set(),
    "config": {"config_values", "config_ca", "config_policy", "config_networks",
               "config_revocation", "config_operations", "errors", "pkcs11_uri"},
    "config_ca": {"config_values", "errors", "pkcs11_uri"},
    "config_networks": set(),
    "config_policy": {"config_values", "errors"},
    "config_revocation": {"config_values", "errors", "config"},  # config: a type hint only
    "config_operations": {"config_values", "errors", "config", "config_revocation"},  # hints
    "config_values": {"pkcs11_uri", "cpu_quota"},  # a PKCS#11 URI key; workers "auto"
    "cpu_quota": set(),  # reads /proc and /sys/fs/cgroup only
    "pkcs11_uri": {"errors"},  # a value type of the configuration, read by pki/token.py
    "encoding": set(),
    "metrics": set(),  # prometheus-client only: every layer may count
}
DATABASE_DRIVERS = {"sqlite3", "aiosqlite", "asyncpg"}  # the store's alone
FORBIDDEN_THIRD_PARTY = {layer: set(DATABASE_DRIVERS) for layer in ALLOWED if layer != "store"}
FORBIDDEN_THIRD_PARTY["authority"] |= {"aiohttp.web", "aiohttp"}
FORBIDDEN_THIRD_PARTY["pki"] |= {"aiohttp"}
FORBIDDEN_THIRD_PARTY["store"] = {"aiohttp", "cryptography"}
FORBIDDEN_THIRD_PARTY["domain"] |= {"aiohttp"}


def imports_of(path: Path, source: str | None = None) -> set[str]:
    """Every module name ``path`` (or ``source`` read as if it were ``path``) imports,
    a relative import resolved against its package: ``from ..base import Store`` in
    acme_ca/store/sqlite/ is acme_ca.store.base."""
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    package = ["acme_ca", *path.relative_to(PACKAGE).parent.parts]  # an __init__'s: its own
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module
            if node.level > 0:
                assert node.level <= len(package), f"{path}: a relative import above acme_ca"
                base = ".".join(package[:len(package) - node.level + 1])
                module = f"{base}.{module}" if module else base
            assert module is not None
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if layer_of(p) in ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    layer = layer_of(path)
    for name in imports_of(path):
        if name.startswith("acme_ca."):
            target = name.split(".")[1]
            if target in ("__version__",):
                continue
            assert target in ALLOWED[layer], f"{layer} may not import acme_ca.{target} ({name})"
        for banned in FORBIDDEN_THIRD_PARTY.get(layer, ()):
            assert name != banned and not name.startswith(banned + "."), f"{layer} imports {name}"


def test_a_relative_import_is_resolved_against_the_modules_package() -> None:
    """``from ..x import y`` is held to the rule as ``from acme_ca.<layer>.x import y``."""
    source = "from ..base import Store\nfrom ... import errors\nfrom . import rows\n"
    found = imports_of(PACKAGE / "store" / "sqlite" / "example.py", source)
    assert {"acme_ca.store.base.Store", "acme_ca.errors", "acme_ca.store.sqlite.rows"} <= found
    assert "acme_ca.api" in imports_of(PACKAGE / "authority" / "x.py", "from ..api import y")


def test_every_layer_is_known() -> None:
    """A new top-level module or package must be placed in the picture."""
    layers = {layer_of(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__", "cli"}
    assert layers <= set(ALLOWED), layers - set(ALLOWED)


# Issue 14 item 1: every signature goes through pki/signer.py. A `.sign(` call is
# cryptography's (a builder or a private key: only signer.py calls those), PKCS#11's
# (a key object on the token: pki/token.py, the TokenSigner), or the Signer
# interface's own (readiness's check signs through whichever signer the issuer has).
SIGN_CALLS = {
    "pki/signer.py": None,  # the one place: any number
    "pki/token.py": None,  # the token's key objects, behind TokenSigner.sign
    "authority/readiness.py": {"signer.sign"},
}


def _sign_calls(tree: ast.AST) -> set[str]:
    return {ast.unparse(node.func) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "sign"}


def test_only_pki_signer_signs() -> None:
    """A `.sign(` anywhere else would sign around the Signer interface: with a key
    object a token cannot give, where nothing sees to it that it runs off the loop."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        calls = _sign_calls(ast.parse(path.read_text(encoding="utf-8")))
        if calls and SIGN_CALLS.get(name, set()) is not None:
            found[name] = calls
    assert found == {k: v for k, v in SIGN_CALLS.items() if v is not None}
    assert _sign_calls(ast.parse("builder.sign(key, hashes.SHA256())")) == {"builder.sign"}
