"""docs/deployment.md, run as written where one machine can run it.

- `<!-- deployment: db-certificate -->`: the database server's certificate from this CA
  (`openssl req`, `acme-ca sign-csr --full-chain`), run with bash in a directory holding
  a CA (`acme-ca init`); PostgreSQL (a private server, tests/store/postgres/server.py)
  then serves with those files, and a store connects with the root as `sslrootcert`.
  `verify-ca`, not the guide's `verify-full`: the certificate names
  db1.bluerobin.local, which no resolver here knows; the name check of `verify-full`
  is tested in tests/store/postgres/test_private_server.py.
- `<!-- deployment: replica-config -->`: the replicas' configuration file loads, and
  its two-host URL's idea works: a host that refuses is skipped for the next.

The haproxy block is checked in tests/test_bench_deploy.py (the bench runs it).
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
from integration.conftest import clean_env, free_port, require_program, run, run_cli
from tests.store.postgres.server import PrivateServer

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"


def block(name: str) -> str:
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(rf"<!-- deployment: {name} -->\n```\w*\n(.*?)```", text, re.S)
    assert match, f"docs/deployment.md lost its {name} block"
    return match.group(1)


async def test_the_database_certificate_comes_from_this_ca(tmp_path: Path) -> None:
    require_program("openssl")
    run_cli("init", "--passphrase-file", _secret(tmp_path / "root.pass"), cwd=tmp_path)
    env = clean_env({"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    run(["bash", "-eu", "-o", "pipefail", "-c", block("db-certificate")], cwd=tmp_path, env=env)
    chain = (tmp_path / "db1.crt").read_text()
    assert chain.count("BEGIN CERTIFICATE") == 2  # leaf, then the intermediate
    root = tmp_path / "acme-ca-data" / "ca" / "root-ca.crt"
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


def _secret(path: Path) -> Path:
    path.write_text("correct horse battery staple\n")
    path.chmod(0o600)
    return path


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
