"""The README's "Revocation: CRLs and OCSP" and "Short-lived certificates and rotation",
run as written.

The fenced blocks after `<!-- revocation: verify -->` and `<!-- revocation: revoke -->`
run, with `bash -eu -o pipefail`, in the directory the walk-through
(integration/test_readme_walkthrough.py, whose fixture and helpers this reuses) leaves,
with its server running: openssl checks certbot's certificate against the CRL named in
its CRL distribution points (RFC 5280 4.2.1.13) and says OK; the operator lists, shows
and revokes it with `acme-ca certs` (the serial as openssl prints it); within seconds
the CRL lists it (RFC 5280 5.1.2.6) and the same openssl command says "certificate
revoked". Only the ports 8555, 8556 and 8080 are replaced, by free ports from the OS.

The Caddyfile after `<!-- rotation: caddy -->` is adapted by Debian's Caddy: the acme
issuer gets the directory and the root it names.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from integration.conftest import _serving, require_program
from integration.test_readme_walkthrough import (
    CERT,
    README,
    bash,
    quick_start,
    readme_ports,
    readme_text,
    user,
    walkthrough,
)

pytestmark = pytest.mark.integration
__all__ = ["user"]  # the walk-through's fixture: a fresh directory, as root and as nobody

BLOCK = re.compile(r"<!-- (revocation|rotation): (\w+) -->\n```(?:sh)?\n(.*?)\n```", re.DOTALL)
REVOKED_WITHIN = 30.0  # seconds: "a few seconds later", with room for a slow machine


def readme_blocks(ports: dict[str, int] | None = None) -> dict[str, str]:
    """The blocks, with the test's ports in place of the README's (``ports``)."""
    blocks = {f"{section}: {name}": text if ports is None else readme_text(text, ports)
              for section, name, text in BLOCK.findall(README.read_text(encoding="utf-8"))}
    assert set(blocks) == {"revocation: verify", "revocation: revoke", "rotation: caddy"}, \
        sorted(blocks)
    return blocks


def test_the_readme_revocation_works_as_written(user: dict[str, Any]) -> None:
    require_program("openssl")
    workdir: Path = user["workdir"]
    popen: dict[str, Any] = user["popen"]
    data = workdir / "acme-ca-data"
    ports = readme_ports()
    walk, blocks = walkthrough(ports), readme_blocks(ports)

    quick_start(workdir, popen, ports)  # the Quick start makes the CA
    bash(walk["config"], workdir, popen)
    serve = shlex.split(walk["serve"])
    with _serving([], workdir, data, ports["8555"], program=serve, **popen):
        bash(walk["client"], workdir, popen)
        checked = bash(blocks["revocation: verify"], workdir, popen)
        assert checked.stdout.strip().splitlines()[-1] == f"{CERT}: OK"

        said = bash(blocks["revocation: revoke"], workdir, popen).stdout
        listed, shown = said.split("\nserial ", 1)
        assert "web.bluerobin.local" in listed and "issued" in listed  # certs list
        assert re.search(r"subject alternative names +web.bluerobin.local", shown)
        assert "Revoked the certificate" in shown and "reason keyCompromise" in shown
        # the CRL the leaf names, on the test's port
        assert f"http://127.0.0.1:{ports['8556']}/crl/" in shown

        deadline = time.monotonic() + REVOKED_WITHIN
        while True:
            again = subprocess.run(
                ["bash", "-eu", "-o", "pipefail", "-c", blocks["revocation: verify"]],
                cwd=workdir, capture_output=True, text=True, timeout=60, check=False,
                **popen)
            if again.returncode != 0:
                break
            assert time.monotonic() < deadline, "the CRL does not list the revoked leaf"
            time.sleep(0.5)
        assert "certificate revoked" in again.stdout + again.stderr, again


def test_the_readme_caddyfile_for_short_lived_certificates_adapts(tmp_path: Path) -> None:
    """The acme issuer with its own directory URL and root, as the README gives it."""
    caddy = require_program("caddy")
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(readme_blocks()["rotation: caddy"] + "\n")
    adapted = subprocess.run([caddy, "adapt", "--config", str(caddyfile)],
                             capture_output=True, text=True, timeout=60, check=True)
    (policy,) = json.loads(adapted.stdout)["apps"]["tls"]["automation"]["policies"]
    assert policy["subjects"] == ["web.bluerobin.local"]
    assert policy["issuers"] == [{"module": "acme",
                                  "ca": "https://ca.bluerobin.local:8555/directory",
                                  "trusted_roots_pem_files": ["/etc/ssl/acme-ca/root-ca.crt"]}]
