"""docs/deployment.md, run as written where one machine can run it.

The offline machine's commands, with `/srv/acme-ca-offline` replaced by a fresh
directory (and the root passphrase given in ACME_CA_ROOT_PASSPHRASE instead of typed):

- `<!-- deployment: ca-init -->`: `acme-ca init` with the replicas' configuration file
  (`<!-- deployment: replica-config -->`, whose PostgreSQL `init` does not open);
- `<!-- deployment: db-certificate -->`: the database server's certificate from this CA
  (`openssl req`, `acme-ca sign-csr --full-chain`), run with bash. PostgreSQL (a private
  server, tests/store/postgres/server.py) then serves with those files, and a store
  connects with the root as `sslrootcert`: `verify-ca`, not the guide's `verify-full`,
  since the certificate names db1.bluerobin.local, which no resolver here knows (the
  name check of `verify-full` is tested in tests/store/postgres/test_private_server.py);
- `<!-- deployment: ca-renew -->`: its `acme-ca intermediate renew` line (the rsync and
  ssh lines need the replicas' hosts).

And the replicas' configuration file loads, and its two-host URL's idea works: a host
that refuses is skipped for the next. The haproxy block is checked in
tests/test_bench_deploy.py (the bench runs it).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import sys
from pathlib import Path

import pytest

from acme_ca.config import load_config
from acme_ca.store import open_store
from bench import postgres
from integration.conftest import clean_env, free_port, require_program, run
from tests.store.postgres.server import PrivateServer

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
OFFLINE = "/srv/acme-ca-offline"


def block(name: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- deployment: {name} -->\n```\w*\n(.*?)```", text, re.S)
    assert match, f"docs/deployment.md lost its {name} block"
    return match.group(1)


def _shell(script: str, cwd: Path) -> None:
    """``script`` with bash, the guide's offline directory being ``cwd/offline``, the
    acme-ca of this virtual environment first in PATH."""
    env = clean_env({
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ACME_CA_ROOT_PASSPHRASE": "correct horse battery staple",
    })
    script = script.replace(OFFLINE, str(cwd / "offline"))
    run(["bash", "-eu", "-o", "pipefail", "-c", script], cwd=cwd, env=env)


async def test_the_offline_machine_makes_the_ca_and_the_database_certificate(
    tmp_path: Path,
) -> None:
    require_program("openssl")
    (tmp_path / "config.toml").write_text(block("replica-config"), encoding="utf-8")
    _shell(block("ca-init"), tmp_path)
    _shell(block("db-certificate"), tmp_path)
    chain = (tmp_path / "db1.crt").read_text()
    assert chain.count("BEGIN CERTIFICATE") == 2  # leaf, then the intermediate
    root = tmp_path / "offline" / "ca" / "root-ca.crt"
    run(["openssl", "verify", "-CAfile", root, "-untrusted", tmp_path / "db1.crt",
         tmp_path / "db1.crt"], cwd=tmp_path)

    server = PrivateServer()
    try:
        for name, mode in (("crt", 0o644), ("key", 0o600)):
            target = server.data / f"server.{name}"
            shutil.copy(tmp_path / f"db1.{name}", target)
            os.chmod(target, mode)
            if os.geteuid() == 0:
                owner = pwd.getpwnam("postgres")
                os.chown(target, owner.pw_uid, owner.pw_gid)
        server.start()
        store = await open_store(server.url(f"?sslmode=verify-ca&sslrootcert={root}"))
        await store.close()
    finally:
        server.remove()

    renew = [line for line in block("ca-renew").splitlines() if line.startswith("acme-ca ")]
    assert len(renew) == 1, renew
    old = (tmp_path / "offline" / "ca" / "intermediate-ca.crt").read_bytes()
    _shell(renew[0], tmp_path)
    assert (tmp_path / "offline" / "ca" / "intermediate-ca.crt").read_bytes() != old
    assert list((tmp_path / "offline" / "ca" / "archive").glob("intermediate-ca.*.crt"))


async def test_the_replica_configuration_loads_and_its_url_skips_a_dead_host(
    tmp_path: Path,
) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(block("replica-config"), encoding="utf-8")
    config = load_config(config_file, {})
    assert config.server.base_url == "https://ca.bluerobin.local"
    assert config.storage.pool_size == 10
    assert "target_session_attrs=read-write" in config.storage.url

    dead = free_port()  # nothing listens there: the first host of the two is down
    async with postgres.fresh_database() as database:
        url = f"postgresql://postgres@127.0.0.1:{dead},127.0.0.1:5432/{database}"
        store = await open_store(f"{url}?target_session_attrs=read-write")
        await store.close()
