"""``python -m bench``: the ACME load generator.

    python -m bench run --directory URL --ca-bundle FILE --http-port P -n 200 -c 8 \\
        [--key ec256|rsa2048] [--accounts K] [--server-pid PID] [--json out.jsonl]
        [--client loadgen|acme-lib] [--poll-interval S]
    python -m bench compare -n 200 -c 1,8,64 [--runs 3] [--json out.jsonl]
        [--acme-ca-storage sqlite|postgresql] [--acme-ca-replicas N] [--acme-ca-workers N|auto]
        [--acme-ca-admin] [--intermediate-key file,token] [--intermediate-key-type T,...]
        [--acme-ca-tree LABEL=PATH] [--acme-ca-python LABEL=PATH]
        [--client loadgen,acme-lib,lego,certbot]
        [--client-runs N] [--poll-interval S] [--resolve hosts|dns]
    python -m bench seed --db FILE --certificates 100000 --orders 300000   (bench/seed.py)

``--client`` picks the clients: the lean generator (bench/loadgen.py, the default),
certbot's acme library (bench/acmelib.py), lego and certbot (bench/programs.py); each
client's cells run in the same invocation, and each has a table of its own, with
the ratios to Pebble. Outside the lean generator, acme-ca resolves the benchmark
names over DNS from pebble-challtestsrv as Pebble does (``--resolve``).
``run`` drives one server that is already running (its http-01 validation must reach
127.0.0.1:P for the benchmark names). ``compare`` starts acme-ca and Pebble itself,
a fresh server per run, and prints medians, spread and the acme-ca/pebble ratios
(and each acme-ca build's to the first build's).
acme-ca runs on SQLite, or on a fresh PostgreSQL database per run (127.0.0.1:5432,
user postgres; dropped after the run), alone or as N replicas behind haproxy
(bench/replicas.py). With ``--intermediate-key``, ``--intermediate-key-type``,
``--acme-ca-tree`` or ``--acme-ca-python`` it runs several acme-ca builds side by side
(bench/builds.py): the intermediate key in a file or on a SoftHSM2 token made for the
run, of one or more types, from this tree and others, under this Python or others.
Exit status: 0 when every issuance succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from bench import acmelib, builds, loadgen, peers, postgres, programs, replicas, report
from bench.client import AcmeError, PollPolicy
from bench.http01 import Http01Responder, free_port
from bench.options import CLIENTS, parse_args

Cell = tuple[str, str | builds.Build, int]  # (client, server, C): one run of a comparison


def _policy(args: argparse.Namespace) -> PollPolicy:
    return PollPolicy(retry_after_cap=args.retry_after_cap)


def _emit(out: TextIO | None, rec: dict[str, Any]) -> None:
    if out is not None:
        report.write_json(out, rec)


def _clients(text: str) -> list[str]:
    clients = [c.strip() for c in text.split(",") if c.strip()]
    unknown = set(clients) - set(CLIENTS)
    if unknown or not clients:
        sys.exit(f"--client: {', '.join(sorted(unknown)) or 'nothing'} "
                 f"(one or more of {', '.join(CLIENTS)})")
    return list(dict.fromkeys(clients))


async def cmd_run(args: argparse.Namespace, out: TextIO | None) -> int:
    pids = args.server_pid or []
    clients = _clients(args.client)
    if clients not in (["loadgen"], ["acme-lib"]):
        sys.exit("run: --client loadgen or acme-lib (lego and certbot: compare)")
    config = loadgen.RunConfig(
        directory=args.directory,
        ca_bundle=args.ca_bundle,
        http_port=args.http_port,
        n=args.n,
        c=args.c,
        key=args.key,
        accounts=args.accounts,
        measure={"server": lambda: pids} if pids else {},
        names=args.names,
        poll=_policy(args),
        timeout=args.timeout,
        stall_s=args.stall,
        label=args.label,
    )
    if clients == ["acme-lib"]:
        async with Http01Responder(args.http_port) as responder:
            stats = await acmelib.run(config, responder, args.poll_interval)
    else:
        stats = await loadgen.run(config)
    rec = report.record(stats, server=args.label or None, client=clients[0])
    print(report.format_run(rec), flush=True)
    _emit(out, rec)
    return 0 if stats.ok == args.n else 1


async def _start_acme_ca(
    workdir: Path, args: argparse.Namespace, http01_port: int,
    stack: contextlib.AsyncExitStack, build: builds.Build, resolvers: list[str] | None,
) -> peers.Peer:
    """acme-ca as --acme-ca-storage and --acme-ca-replicas say, of ``build``; its
    database (if any) is dropped when ``stack`` closes, after the servers have stopped."""
    names = [args.names.format(i=i) for i in range(max(args.n, args.client_runs))]
    database = None
    if args.acme_ca_storage == "postgresql":
        database = await stack.enter_async_context(postgres.fresh_database())
    if args.acme_ca_replicas is None:
        return await replicas.start_acme_ca(
            workdir, http01_port, names, args.acme_ca_workers, database,
            admin=args.acme_ca_admin, build=build, resolvers=resolvers,
        )
    return await replicas.start_replicas(
        workdir, http01_port, names, args.acme_ca_replicas, args.acme_ca_workers, database,
        resolvers,
    )


def acme_ca_setup(args: argparse.Namespace) -> str:
    """How acme-ca ran, in words, for the records and the table's title."""
    storage = "PostgreSQL" if args.acme_ca_storage == "postgresql" else "SQLite"
    workers = f", --workers {args.acme_ca_workers}" if args.acme_ca_workers != 1 else ""
    workers += ", admin listener" if args.acme_ca_admin else ""
    if args.acme_ca_replicas is None:
        return f"{storage}{workers}"
    return f"{storage}, {args.acme_ca_replicas} replica(s) behind haproxy{workers}"


def resolve(args: argparse.Namespace, client: str) -> str:
    """How acme-ca finds the names with ``client``: --resolve, or dns for every client
    but the lean generator (whose history in docs/performance.md used hosts)."""
    return args.resolve or ("hosts" if client == "loadgen" else "dns")


async def _one(
    cell: Cell,
    workdir: Path,
    args: argparse.Namespace,
    responder: Http01Responder,
    dns_port: int | None,
) -> dict[str, Any]:
    client, server, c = cell
    # a program answers http-01 on a port of its own; the others on the bench's responder
    http01_port = free_port() if client in programs.PROGRAMS else responder.port
    async with contextlib.AsyncExitStack() as stack:
        extra: dict[str, Any] = {"client": client, "resolve": resolve(args, client)}
        if isinstance(server, builds.Build):
            build, server = server, server.name
            dns = [f"127.0.0.1:{dns_port}"] if extra["resolve"] == "dns" else None
            peer = await _start_acme_ca(workdir, args, http01_port, stack, build, dns)
            extra.update({
                "server": server, "server_version": "", "setup": acme_ca_setup(args),
                "database": peer.database, "intermediate_key": build.key,
                "intermediate_key_type": build.key_type or "default",
                "tree": str(build.tree or ""), "python": build.interpreter,
            })
        else:
            assert dns_port is not None
            peer = await peers.start_pebble(workdir, http01_port, dns_port)
            extra.update({"server": server, "server_version": peers.pebble_version(),
                          "resolve": "dns"})
        stack.push_async_callback(asyncio.to_thread, peer.stop)
        program = client in programs.PROGRAMS
        config = loadgen.RunConfig(
            directory=peer.directory,
            ca_bundle=peer.ca_bundle,
            n=args.client_runs if program else args.n,
            c=c,
            key=args.key,
            accounts=args.accounts,
            measure=peer.measure(),
            names=args.names,
            poll=_policy(args),
            timeout=args.timeout,
            stall_s=args.stall,
            label=server,
        )
        if client == "loadgen":
            stats = await loadgen.run(config, responder)
        elif client == "acme-lib":
            extra["poll_interval_s"] = args.poll_interval
            stats = await acmelib.run(config, responder, args.poll_interval,
                                      workdir / "acme-lib.stderr")
        else:
            stats = await programs.run(client, config, http01_port, workdir / client)
            extra["client_version"] = programs.version(client)
        if "stalled" in stats.errors and server == "pebble":  # a Go server says where
            extra["server_hang"] = await asyncio.to_thread(peer.dump_go_stacks)
    rec = report.record(stats, server_log_problems=peer.log_problems(), **extra)
    return programs.add_run_times(rec, stats) if program else rec


async def _attempts(
    cell: Cell,
    root: Path,
    args: argparse.Namespace,
    run_no: int,
    responder: Http01Responder,
    dns_port: int | None,
) -> list[dict[str, Any]]:
    """One run of one server with one client, repeated (up to --attempts) while it has
    errors."""
    client, server, c = cell
    done: list[dict[str, Any]] = []
    name = server.name if isinstance(server, builds.Build) else server
    slug = re.sub(r"[^\w.-]+", "-", name).strip("-")
    slug = slug if client == "loadgen" else f"{client}-{slug}"
    for attempt in range(1, args.attempts + 1):
        workdir = root / f"{slug}-c{c}-run{run_no}-{attempt}"
        rec = await _one(cell, workdir, args, responder, dns_port)
        rec.update(run=run_no, attempt=attempt, complete=rec["ok"] == rec["n"])
        print(f"[{client}: {name} C={rec['c']} run {run_no}/{args.runs}, attempt {attempt}]")
        print(report.format_run(rec), flush=True)
        done.append(rec)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        if rec["complete"]:
            break
    return done


def _emit_all(out: TextIO | None, recs: list[dict[str, Any]]) -> None:
    for rec in recs:
        _emit(out, rec)


def _servers(args: argparse.Namespace) -> list[str | builds.Build]:
    """The servers of a comparison: acme-ca's builds, then Pebble if asked and there."""
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - {"acme-ca", "pebble"}
    if unknown:
        sys.exit(f"unknown server(s): {', '.join(sorted(unknown))}")
    if "pebble" in servers and not peers.pebble_installed():
        print(
            "pebble is not installed (apt-get install pebble): comparing nothing, "
            "running acme-ca only",
            file=sys.stderr,
        )
        servers.remove("pebble")
    if args.acme_ca_replicas is not None and args.acme_ca_replicas < 1:
        sys.exit("--acme-ca-replicas must be 1 or more")
    try:
        acme_cas = builds.parse_builds(args.intermediate_key, args.intermediate_key_type,
                                       args.acme_ca_tree, args.acme_ca_python)
    except ValueError as exc:
        sys.exit(str(exc))
    if acme_cas != [builds.DEFAULT] and args.acme_ca_replicas is not None:
        sys.exit("--acme-ca-replicas runs the default build only (a file key, this tree)")
    return [b for s in servers for b in (acme_cas if s == "acme-ca" else [s])]


def _cells(servers: list[str | builds.Build], clients: list[str], concurrencies: list[int]
           ) -> list[tuple[int, list[Cell]]]:
    """Each concurrency with its cells; a program (lego, certbot) runs alone, at C=1,
    once whatever -c says (in the first concurrency's turn)."""
    return [(c, [(client, server, 1 if client in programs.PROGRAMS else c)
                 for client in clients for server in servers
                 if client not in programs.PROGRAMS or turn == 0])
            for turn, c in enumerate(concurrencies)]


async def cmd_compare(args: argparse.Namespace, out: TextIO | None) -> int:
    clients = _clients(args.client)
    missing = [p for p in clients if p in programs.PROGRAMS and not programs.installed(p)]
    if missing:
        sys.exit(f"--client: {', '.join(missing)} is not installed")
    servers = _servers(args)
    concurrencies = [int(c) for c in args.c.split(",")]
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="acme-ca-bench-", dir=args.workdir))
    records: list[dict[str, Any]] = []
    failed = 0
    try:
        async with contextlib.AsyncExitStack() as stack:
            responder = await stack.enter_async_context(Http01Responder(args.http_port))
            dns_port = None
            if "pebble" in servers or any(resolve(args, c) == "dns" for c in clients):
                dns, dns_port = await peers.start_dns(root / "dns")
                stack.callback(peers.stop_process, dns)
            for _, cells in _cells(servers, clients, concurrencies):
                for run_no in range(1, args.runs + 1):
                    for cell in cells if run_no % 2 else cells[::-1]:  # alternate who goes first
                        done = await _attempts(cell, root, args, run_no, responder, dns_port)
                        records.extend(done)
                        _emit_all(out, done)
                        failed += not done[-1]["complete"]
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"data directories and logs kept in {root}", file=sys.stderr)
    for client in clients:
        summaries = report.summarise(r for r in records if r["client"] == client)
        for summary in summaries:
            _emit(out, {**summary, "client": client})
        print()
        print(f"client {client}: {_what(args, client)}, acme-ca on {acme_ca_setup(args)}, "
              f"names resolved by {resolve(args, client)}: median (min-max)")
        print(report.format_summary(summaries, markdown=args.markdown), flush=True)
    return 0 if failed == 0 else 1


def _what(args: argparse.Namespace, client: str) -> str:
    if client in programs.PROGRAMS:
        return (f"{args.client_runs} sequential runs of `{programs.run_title(client)}` "
                f"per server, runs={args.runs} (p50/p99 issuance ms: one run's wall time)")
    polls = f", polling every {args.poll_interval:g} s" if client == "acme-lib" else ""
    return f"n={args.n} key={args.key} runs={args.runs}{polls}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["seed"]:  # bench/seed.py: fill a database with history
        from bench.seed import main as seed_main

        return seed_main(argv[1:])
    args = parse_args(argv)
    command = cmd_run if args.command == "run" else cmd_compare
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(args.json.open("a", encoding="utf-8")) if args.json else None
        try:
            return asyncio.run(command(args, out))
        except (AcmeError, RuntimeError, OSError) as exc:  # setup failed: no run at all
            print(f"bench: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
