"""The README's "Onboarding a team", run as written after its walk-through.

The fenced blocks after `<!-- onboarding: config -->`, `<!-- onboarding: team -->` and
`<!-- onboarding: lego -->` run, with `bash -eu -o pipefail`, in the directory the
walk-through (integration/test_readme_walkthrough.py, whose fixture and helpers this
reuses) leaves: its config, its CA, its certbot. Then the server restarts with the
appended config (External Account Binding required, RFC 8555 7.3.4), and the team's
four commands register with a key made by `acme-ca eab create` and get a NATS worker's
certificate; lego registers with a key of its own. Only the ports 8555, 8556 and 8080 are
replaced, by free ports from the OS.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from integration.conftest import _serving, https_get, require_program, run_cli
from integration.test_readme_walkthrough import (
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

BLOCK = re.compile(r"<!-- onboarding: (\w+) -->\n```sh\n(.*?)\n```", re.DOTALL)
WORKER = "worker-1.team-blue.bluerobin.local"
LIVE = f"team-blue/config/live/{WORKER}"


def onboarding(ports: dict[str, int]) -> dict[str, str]:
    blocks = dict(BLOCK.findall(README.read_text(encoding="utf-8")))
    assert set(blocks) == {"config", "team", "lego"}, sorted(blocks)
    return {name: readme_text(text, ports) for name, text in blocks.items()}


def test_the_readme_onboarding_works_as_written(user: dict[str, Any]) -> None:
    for program in ("openssl", "jq", "lego"):
        require_program(program)
    workdir: Path = user["workdir"]
    popen: dict[str, Any] = user["popen"]
    data = workdir / "acme-ca-data"
    ports = readme_ports()
    port = ports["8555"]
    walk, blocks = walkthrough(ports), onboarding(ports)

    quick_start(workdir, popen, ports)  # the Quick start makes the CA
    bash(walk["config"], workdir, popen)
    serve = shlex.split(walk["serve"])
    with _serving([], workdir, data, port, program=serve, **popen):
        bash(walk["client"], workdir, popen)  # the walk-through, before keys are required

    bash(blocks["config"], workdir, popen)
    root = data / "ca" / "root-ca.crt"
    with _serving([], workdir, data, port, program=serve, **popen):
        directory = json.loads(https_get(port, "/directory", root).body)
        assert directory["meta"]["externalAccountRequired"] is True
        bash(blocks["team"], workdir, popen)
        bash(blocks["lego"], workdir, popen)

    listed = run_cli("--config", workdir / "acme-ca.toml", "eab", "list", "--json",
                     cwd=workdir).stdout
    keys = {k["label"]: k for k in json.loads(listed)}
    assert {label: k["state"] for label, k in keys.items()} == {
        "team-blue": "bound", "team-green": "bound"}
    assert keys["team-blue"]["domains"] == ["team-blue.bluerobin.local"]
    assert "hmac" not in listed
    for team in ("team-blue", "team-green"):  # the HMAC key: its owner's only (7.3.4)
        assert (workdir / f"{team}.json").stat().st_mode & 0o077 == 0, team

    bash(f"openssl verify -CAfile {root} -untrusted {LIVE}/chain.pem {LIVE}/cert.pem",
         workdir, popen)
    leaf = x509.load_pem_x509_certificate((workdir / LIVE / "cert.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [WORKER]
    usages = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    green = workdir / "team-green" / "lego" / "certificates" / "web.bluerobin.local.crt"
    assert green.is_file()
    assert "client" in directory["meta"]["profiles"]  # else certbot falls back to server
    assert usages == [ExtendedKeyUsageOID.CLIENT_AUTH], usages  # a NATS worker's
