"""The README's "Your first certificate, on one machine", run as written.

A new user who followed the README's certbot example on one machine got "DNS error
looking up web.bluerobin.local with the system resolver: no such name": nothing told
them to map the name first. The walk-through now does (a `[validation.hosts]` entry),
and this test keeps it working: the fenced blocks after `<!-- walkthrough: config -->`,
`<!-- walkthrough: serve -->` and `<!-- walkthrough: client -->` are read from
README.md and run in a fresh directory holding what the Quick start leaves there:

- `.venv` with acme-ca installed: for the current user a symlink to the virtual
  environment running these tests (where certbot is already installed, so the
  walk-through's `pip install -q certbot` finds it); for `nobody` the Quick start's own
  `python3 -m venv .venv && .venv/bin/pip install -q <this project>`, run as `nobody`
  (it cannot run the tests' interpreter), so the walk-through installs certbot itself;
- `acme-ca-data/`: made by the Quick start's `.venv/bin/acme-ca serve`, run here first.

What is substituted, and only this: the ports 8555 (the server), 8556 (its plain-HTTP
listener of CRLs and OCSP) and 8080 (http-01) become free ports from the OS, so that
the test never binds a fixed port, and the Quick start's `serve` gets `--listen
127.0.0.1:<port>` for the same reason. The config and client blocks run with `bash
-eu -o pipefail`; the serve block is one command, started as a background process and
stopped by pid.

It runs as the current user and, when that is root, again as the unprivileged user
`nobody` (with HOME set to the directory and a system PATH, as a normal user has),
since certbot needs `--config-dir`, `--work-dir` and `--logs-dir` when it is not root.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from integration.conftest import _serving, clean_env, free_port, require_program
from tests.required import missing

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
BLOCK = re.compile(r"<!-- walkthrough: (\w+) -->\n```sh\n(.*?)\n```", re.DOTALL)
# what the test replaces with free ports; the client block names the first two
PORTS = {"8555": "server", "8080": "http-01", "8556": "CRLs and OCSP"}
CERT = "certbot/config/live/web.bluerobin.local/cert.pem"
NOBODY = 65534


def walkthrough(ports: dict[str, int]) -> dict[str, str]:
    """The config, serve and client blocks of README.md, with `ports` substituted."""
    blocks = dict(BLOCK.findall(README.read_text(encoding="utf-8")))
    assert set(blocks) == {"config", "serve", "client"}, sorted(blocks)
    for literal in PORTS:
        assert literal in blocks["config"], literal
    for literal in ("8555", "8080"):
        assert literal in blocks["client"], literal
    return {name: readme_text(text, ports) for name, text in blocks.items()}


def readme_text(text: str, ports: dict[str, int]) -> str:
    """A README block with the ports of PORTS replaced by the test's."""
    return re.sub(r"\b(8555|8080|8556)\b", lambda m: str(ports[m.group(1)]), text)


def readme_ports() -> dict[str, int]:
    """Distinct free ports from the OS for the README's 8555, 8080 and 8556."""
    ports: dict[str, int] = {}
    for literal in PORTS:
        port = free_port()
        while port in ports.values():
            port = free_port()
        ports[literal] = port
    return ports


@pytest.fixture(params=["current user", "nobody"])
def user(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A fresh directory with the Quick start's `.venv`, and the Popen arguments that
    run as that user there."""
    if request.param == "nobody" and os.geteuid() != 0:
        missing("not root: the README's run as an unprivileged user needs root to switch")
    workdir = Path(tempfile.mkdtemp(prefix="walkthrough-"))
    try:
        popen: dict[str, Any] = {"env": clean_env({"HOME": str(workdir)})}
        if request.param == "nobody":
            os.chown(workdir, NOBODY, NOBODY)
            popen.update(user=NOBODY, group=NOBODY, extra_groups=[])
            popen["env"]["PATH"] = "/usr/local/bin:/usr/bin:/bin"
            bash(f"python3 -m venv .venv && .venv/bin/pip install -q {shlex.quote(str(PROJECT))}",
                 workdir, popen)
        else:
            (workdir / ".venv").symlink_to(sys.prefix)
            require_program(str(workdir / ".venv" / "bin" / "certbot"))
        require_program(str(workdir / ".venv" / "bin" / "acme-ca"))
        yield {"workdir": workdir, "popen": popen}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def bash(script: str, workdir: Path, popen: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", script], cwd=workdir, capture_output=True,
        text=True, timeout=300, check=False, **popen,
    )
    if result.returncode != 0:
        pytest.fail(f"{script}\nexited {result.returncode}\nstdout: {result.stdout}\n"
                    f"stderr: {result.stderr}\n{logs(workdir)}")
    return result


def quick_start(workdir: Path, popen: dict[str, Any], ports: dict[str, int]) -> None:
    """The Quick start: `.venv/bin/acme-ca serve` makes the CA in ``workdir``, then
    stops: on a port from the OS, and its plain-HTTP listener of CRLs on the one that
    stands for the default 8556, as the walk-through's config names it (the CRL it
    publishes names that URL, as the walk-through's leaves do)."""
    quick = free_port()
    argv = ["serve", "--listen", f"127.0.0.1:{quick}", "--http-listen",
            f"127.0.0.1:{ports['8556']}"]
    with _serving(argv, workdir, workdir / "acme-ca-data", quick,
                  program=[".venv/bin/acme-ca"], **popen):
        pass


def logs(workdir: Path) -> str:
    parts = [f"--- {p.name}\n{p.read_text(errors='replace')}"
             for p in sorted(workdir.glob("acme-ca-data.serve-*"))]
    parts += [f"--- {p}\n{p.read_text(errors='replace')}"
              for p in sorted(workdir.glob("certbot/logs/*.log"))]
    return "\n".join(parts)


def test_the_readme_walkthrough_works_as_written(user: dict[str, Any]) -> None:
    """RFC 8555 8.3: the CA fetches http://web.bluerobin.local:<http01_port>/... and
    finds certbot there only because the config the walk-through writes maps the name."""
    require_program("openssl")
    workdir: Path = user["workdir"]
    popen: dict[str, Any] = user["popen"]
    data = workdir / "acme-ca-data"
    ports = readme_ports()
    port = ports["8555"]
    blocks = walkthrough(ports)

    quick_start(workdir, popen, ports)
    assert (data / "ca" / "root-ca.crt").is_file()

    bash(blocks["config"], workdir, popen)
    serve = shlex.split(blocks["serve"])
    with _serving([], workdir, data, port, program=serve, **popen) as server:
        result = bash(blocks["client"], workdir, popen)
        assert "No CA found" not in server.log()  # the Quick start's CA, kept
    assert result.stdout.strip().splitlines()[-1] == f"{CERT}: OK"
    leaf = x509.load_pem_x509_certificate((workdir / CERT).read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web.bluerobin.local"]
    intermediate = x509.load_pem_x509_certificate(
        (data / "ca" / "intermediate-ca.crt").read_bytes())
    leaf.verify_directly_issued_by(intermediate)
