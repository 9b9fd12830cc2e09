"""docs/operations.md's command blocks for the admin command line and the audit log
(issue 13, items 4 and 5), run as written with ``bash -eu -o pipefail``, with `acme-ca`
on the PATH and $ACME_CA_CONFIG naming a SQLite database that holds
``tests/cli/history.py``'s rows; the only change is the example account id, replaced
by that history's ``acct-1``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from acme_ca.config import load_config
from tests.cli.conftest import storage_config
from tests.cli.history import seed_url

DOC = Path(__file__).parents[2] / "docs" / "operations.md"
BLOCK = re.compile(r"<!-- (admin-cli|audit): (\w+) -->\n```sh\n(.*?)\n```", re.DOTALL)
EXAMPLE_ACCOUNT = "kF2pQ8xW1mZ0vB7n"


def blocks() -> dict[str, str]:
    found = {f"{group}: {name}": text.replace(EXAMPLE_ACCOUNT, "acct-1")
             for group, name, text in BLOCK.findall(DOC.read_text(encoding="utf-8"))}
    assert list(found) == ["audit: verify", "admin-cli: accounts", "admin-cli: revoke",
                           "admin-cli: db"], list(found)
    return found


def bash(script: str, cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACME_CA_CONFIG": str(config),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-eu", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (script, done.stdout, done.stderr)
    return done


def test_the_operations_guide_works_as_written(tmp_path: Path) -> None:
    config = storage_config(tmp_path, f"sqlite:///{tmp_path / 'ca.db'}")
    asyncio.run(seed_url(load_config(config).storage.url))
    found = blocks()

    said = bash(found["admin-cli: accounts"], tmp_path, config).stdout
    assert "acct-1" in said and "key thumbprint" in said and "order-b" in said
    assert "Would deactivate the account acct-1" in said

    done = bash(found["admin-cli: revoke"], tmp_path, config)
    assert "Would revoke 2 unexpired certificates of the account acct-1" in done.stdout
    assert "Revoked 2 unexpired certificates of the account acct-1" in done.stdout
    assert "Deactivated the account acct-1" in done.stdout
    assert done.stderr.count("acme-ca: audit: ") == 3

    said = bash(found["admin-cli: db"], tmp_path, config).stdout
    assert said.startswith("The database is already at version ")
    assert "audit_log" in said

    said = bash(found["audit: verify"], tmp_path, config).stdout
    head = (tmp_path / "audit-head.txt").read_text().strip()
    assert re.fullmatch(r"[1-9]\d*:[0-9a-f]{64}", head), head
    assert f"chain intact, head {head.replace(':', ' ')}" in said
    deactivated = json.loads(said[said.index("[\n"):said.index("\n]\n") + 2])
    assert [e["details"] for e in deactivated] == [{"account": "acct-1", "by": "operator"}]
    assert (tmp_path / "audit-2026-12.jsonl").is_file()
    assert said.rstrip().splitlines()[-1].endswith(head.replace(":", " "))
