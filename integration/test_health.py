"""/healthz and /readyz of a real `acme-ca serve` (issue 13 item 1), asked as
docs/operations.md shows (its curl command, on this test's port): ready once the
process listens, its lease taken, its CA sound."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from integration.conftest import require_program, serving

pytestmark = pytest.mark.integration

OPERATIONS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def documented_curl() -> list[str]:
    """The curl command line of operations.md's "Health checks"."""
    section = OPERATIONS.read_text().split("## Health checks", 1)[1].split("\n## ", 1)[0]
    (line,) = re.findall(r"^curl .*$", section, flags=re.MULTILINE)
    return shlex.split(line)


def test_a_running_server_is_live_and_ready_as_the_guide_shows(tmp_path: Path) -> None:
    curl = require_program("curl")
    argv = documented_curl()
    with serving(tmp_path / "acme-ca-data") as server:
        argv = [curl, *argv[1:-1], argv[-1].replace(":8555/", f":{server.port}/")]
        ready = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True,
                               timeout=30, check=True)
        body = json.loads(ready.stdout)
        assert body == {"status": "ready", "checks": {
            "store": "ok", "signing": "ok", "certificates": "ok", "background_lease": "ok"}}
        live = server.get("/healthz")
        assert live.status == 200 and json.loads(live.body) == {"status": "ok"}
        assert server.get("/health").status == 200  # kept for compatibility
