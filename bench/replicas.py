"""acme-ca as a comparison runs it: one ``acme-ca serve``, or N replicas behind haproxy.

``start_acme_ca`` runs ``python -m acme_ca --config <file> serve`` with a fresh data
directory (the CA is bootstrapped on first start), ``[validation]`` sending http-01 for
every benchmark name to 127.0.0.1:<the generator's port>, and its storage: SQLite in the
data directory, or a PostgreSQL database (bench/postgres.py) when one is given.

``start_replicas`` lays out what docs/deployment.md describes, on one machine: N
``acme-ca serve`` processes on their own loopback ports and data directories (each has
its own server certificate), sharing nothing but the database (PostgreSQL's, or one
SQLite file) and the CA files; the first one to start bootstraps those. haproxy
(bench/haproxy.py) listens on another port, in TCP mode, round robin, TLS passed
through; every replica's ``[server] external_url`` names haproxy's port, so the URLs
they emit lead back through it. The run measures the replicas' CPU as the server's,
haproxy's and PostgreSQL's backends' beside it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from acme_ca.config_policy import LIMIT_NAMES, MAX_LIMIT_COUNT
from bench import builds, haproxy, postgres
from bench.http01 import free_port, free_ports
from bench.peers import Peer, environment, spawn, start


def acme_ca_config(
    data_dir: Path,
    port: int,
    http01_port: int,
    names: list[str],
    workers: int | str = 1,
    *,
    storage_url: str | None = None,
    external_url: str | None = None,
    ca_dir: Path | None = None,
    admin: bool = False,
    ca: str = "",
    resolvers: list[str] | None = None,
) -> str:
    """One acme-ca's configuration. Replicas share ``storage_url``, the CA files in
    ``ca_dir`` and ``external_url`` (haproxy's, which every URL they emit must name);
    behind a proxy, loopback is allowed for validation only when said so, as here.
    ``admin``: with the admin listener (and so the store's latency measured, and with
    workers the metrics shared between processes), on a port of its own. ``ca``: a
    ``[ca]`` section of its own (a token key's, bench/builds.py), instead of ``ca_dir``.
    ``resolvers``: the names are resolved over DNS by these servers (as a deployment
    does), instead of ``[validation.hosts]`` naming each of them 127.0.0.1."""
    hosts = "".join(f'"{name}" = "127.0.0.1"\n' for name in names)
    names_from = f"\n[validation.hosts]\n{hosts}"
    if resolvers is not None:
        names_from = "resolvers = [" + ", ".join(f'"{r}"' for r in resolvers) + "]\n"
    server = (
        f'[server]\nlisten = "127.0.0.1:{port}"\nhostname = "localhost"\n'
        f'data_dir = "{data_dir}"\nworkers = {workers!r}\n'  # 2, or 'auto'
    )
    networks = ""
    if external_url:
        server += f'external_url = "{external_url}"\n'
        networks = 'allowed_networks = ["127.0.0.0/8"]\n'
    storage = f'\n[storage]\nurl = "{storage_url}"\n' if storage_url else ""
    # the plain-HTTP listener (CRLs) on a port of its own: its default is one fixed port
    revocation = f'\n[revocation]\nhttp_listen = "127.0.0.1:{free_port()}"\n'
    if admin:
        revocation += f'\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n'
    if ca_dir:
        ca = "\n[ca]\n" + "".join(
            f'{key} = "{ca_dir / name}"\n'
            for key, name in (
                ("root_cert", "root-ca.crt"),
                ("intermediate_cert", "intermediate-ca.crt"),
                ("intermediate_key", "intermediate-ca.key"),
                ("chain", "ca-chain.pem"),
            )
        )
    return (
        f"{server}{storage}{revocation}{ca}\n"
        '[policy]\nallowed_domains = ["bluerobin.local"]\n\n'
        f"{BENCH_LIMITS}\n"
        f"[validation]\nhttp01_port = {http01_port}\n{networks}{names_from}"
    )


# The load generator issues thousands of orders per account, from one address: limits it
# never reaches, so that every limit is still checked and spent (its cost is in the
# figures) but none refuses. Real deployments keep the defaults (config.example.toml).
BENCH_LIMITS = "[limits]\n" + "".join(
    f"{name} = {MAX_LIMIT_COUNT}\n" if name == "pending_authorizations_per_account"
    else f'{name} = "{MAX_LIMIT_COUNT}/1h"\n' for name in LIMIT_NAMES)


def _write_config(workdir: Path, name: str, config_text: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.toml"
    config.write_text(config_text, encoding="utf-8")
    return config


def _spawn_acme_ca(
    workdir: Path, name: str, config: Path, env: dict[str, str] | None = None,
    python: str = sys.executable,
) -> subprocess.Popen[bytes]:
    """``python -m acme_ca --config <config> serve``, logging to <workdir>/<name>.stdout
    and .stderr; ``env``: what it adds to the bench's environment, ``python``: the
    interpreter (bench/builds.py)."""
    argv = [python, "-m", "acme_ca", "--config", str(config), "serve"]
    return spawn(name, argv, workdir, environment(**(env or {})))


async def start_acme_ca(
    workdir: Path,
    http01_port: int,
    names: list[str],
    workers: int | str = 1,
    database: str | None = None,
    admin: bool = False,
    build: builds.Build = builds.DEFAULT,
    resolvers: list[str] | None = None,
) -> Peer:
    """acme-ca serve in ``workdir`` (fresh data directory), ready to take orders; on
    SQLite in its data directory, or on the PostgreSQL ``database`` when given;
    ``admin``: with the admin listener (``acme_ca_config``); ``build``: its key and
    source tree (bench/builds.py: ``init`` runs first when the build needs it);
    ``resolvers``: DNS servers for the names (``acme_ca_config``)."""
    port = free_port()
    data_dir = workdir / "data"
    storage = postgres.url(database) if database else None
    token, conf, ca = None, None, ""
    if build.key == "token":
        conf, uri, module = builds.make_token(workdir / "softhsm")
        token, ca = (uri, module), builds.ca_config(uri, module)
    text = acme_ca_config(data_dir, port, http01_port, names, workers, storage_url=storage,
                          admin=admin, ca=ca, resolvers=resolvers)
    config = _write_config(workdir, "acme-ca", text)
    env = builds.environment(build, conf)
    if build.needs_init:
        await asyncio.to_thread(builds.run_init, build, config, workdir,
                                environment(**env), token)
    peer = Peer(
        build.name,
        f"https://127.0.0.1:{port}/directory",  # the server names itself by address
        data_dir / "ca" / "root-ca.crt",
        {"acme-ca": _spawn_acme_ca(workdir, "acme-ca", config, env, build.interpreter)},
        workdir,
        database=database,
    )
    await start(peer)
    return peer


async def start_replicas(
    workdir: Path,
    http01_port: int,
    names: list[str],
    replicas: int,
    workers: int | str = 1,
    database: str | None = None,
    resolvers: list[str] | None = None,
) -> Peer:
    """``replicas`` acme-ca processes behind haproxy, on PostgreSQL's ``database`` or,
    without one, on one SQLite file; ready when haproxy answers for them."""
    if not haproxy.installed():
        raise RuntimeError("haproxy is not installed (apt-get install haproxy)")
    workdir.mkdir(parents=True, exist_ok=True)
    ca_dir = workdir / "ca"
    storage = postgres.url(database) if database else f"sqlite:///{workdir / 'acme-ca.db'}"
    proxy_port, *ports = free_ports(1 + replicas)
    peer = Peer(
        "acme-ca",
        f"https://127.0.0.1:{proxy_port}/directory",
        ca_dir / "root-ca.crt",
        {},
        workdir,
        database=database,
    )
    for index, port in enumerate(ports, 1):
        name = f"acme-ca-{index}"
        text = acme_ca_config(
            workdir / name, port, http01_port, names, workers, storage_url=storage,
            external_url=f"https://127.0.0.1:{proxy_port}", ca_dir=ca_dir, resolvers=resolvers,
        )
        peer.processes[name] = _spawn_acme_ca(workdir, name, _write_config(workdir, name, text))
        if index == 1:  # it bootstraps the CA files the others read
            await _replica_ready(peer, port)
    await asyncio.gather(*(_replica_ready(peer, port) for port in ports[1:]))
    config = haproxy.write_config(
        workdir / "haproxy.cfg",
        f"127.0.0.1:{proxy_port}",
        [(f"acme-ca-{i}", f"127.0.0.1:{port}") for i, port in enumerate(ports, 1)],
        str(ca_dir / "root-ca.crt"),
    )
    peer.proxy = spawn("haproxy", haproxy.argv(config), workdir, environment())
    await start(peer)
    return peer


async def _replica_ready(peer: Peer, port: int) -> None:
    """Until one replica answers on its own port (its URLs name haproxy's)."""
    alone = Peer(peer.name, f"https://127.0.0.1:{port}/directory", peer.ca_bundle,
                 peer.processes, peer.workdir)
    await start(alone)  # on failure, stops every replica started (they share the dict)
