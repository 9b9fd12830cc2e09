"""``python -m bench``: the ACME load generator.

    python -m bench run --directory URL --ca-bundle FILE --http-port P -n 200 -c 8 \\
        [--key ec256|rsa2048] [--accounts K] [--server-pid PID] [--json out.jsonl]
    python -m bench compare -n 200 -c 1,8,64 [--runs 3] [--json out.jsonl]
        [--acme-ca-storage sqlite|postgresql] [--acme-ca-replicas N] [--acme-ca-workers W]
        [--acme-ca-admin] [--intermediate-key file,token] [--intermediate-key-type T,...]
        [--acme-ca-tree LABEL=PATH]
    python -m bench seed --db FILE --certificates 100000 --orders 300000   (bench/seed.py)

``run`` drives one server that is already running (its http-01 validation must reach
127.0.0.1:P for the benchmark names). ``compare`` starts acme-ca and Pebble itself,
a fresh server per run, and prints medians, spread and the acme-ca/pebble ratios
(and each acme-ca build's to the first build's).
acme-ca runs on SQLite, or on a fresh PostgreSQL database per run (127.0.0.1:5432,
user postgres; dropped after the run), alone or as N replicas behind haproxy
(bench/replicas.py). With ``--intermediate-key``, ``--intermediate-key-type`` or
``--acme-ca-tree`` it runs several acme-ca builds side by side (bench/builds.py): the
intermediate key in a file or on a SoftHSM2 token made for the run, of one or more
types, from this tree and others.
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

from bench import builds, loadgen, peers, postgres, replicas, report
from bench.client import KEY_TYPES, AcmeError, PollPolicy
from bench.http01 import Http01Responder


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=200, help="certificates per run (200)")
    parser.add_argument(
        "--key", choices=KEY_TYPES, default="ec256", help="account and certificate key type (ec256)"
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=None,
        help="accounts to register and share (default: one per worker)",
    )
    parser.add_argument(
        "--names",
        default=loadgen.DEFAULT_NAMES,
        help="name template, {i} is the issuance index (%(default)s)",
    )
    parser.add_argument(
        "--retry-after-cap",
        type=float,
        default=0.1,
        metavar="S",
        help="honour Retry-After up to S seconds; 0 ignores it (0.1)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, s (30)")
    parser.add_argument(
        "--stall", type=float, default=20.0, help="abort a run when nothing ends for S s (20)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="append JSON lines (one per run, plus summaries) to FILE",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("seed", help="fill a database with history (see seed --help)")
    run = commands.add_parser("run", help="drive one running ACME server")
    run.add_argument("--directory", required=True, help="the server's directory URL")
    run.add_argument("--ca-bundle", type=Path, help="CA certificates the server's TLS chains to")
    run.add_argument(
        "--http-port",
        type=int,
        required=True,
        help="port of the generator's http-01 responder on 127.0.0.1",
    )
    run.add_argument("-c", type=int, default=8, help="concurrent issuances (8)")
    run.add_argument("--server-pid", type=int, action="append",
                     help="measure this process tree's CPU and RSS (repeat for replicas)")
    run.add_argument("--label", default="", help="a name for this run in the output")
    _common(run)
    compare = commands.add_parser("compare", help="acme-ca against Pebble, side by side")
    compare.add_argument("-c", default="1,8,64", help="concurrencies, comma-separated (1,8,64)")
    compare.add_argument("--runs", type=int, default=3, help="runs per server and C (3)")
    compare.add_argument(
        "--servers",
        default="acme-ca,pebble",
        help="which servers (acme-ca,pebble; pebble needs Debian's pebble)",
    )
    compare.add_argument(
        "--http-port",
        type=int,
        default=0,
        help="http-01 responder port (default: one the OS picks)",
    )
    compare.add_argument(
        "--attempts",
        type=int,
        default=3,
        help="tries per run: a run with errors (a hung server) is repeated (3)",
    )
    compare.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where data directories go (default: a new temp directory)",
    )
    compare.add_argument("--keep", action="store_true", help="keep data directories and logs")
    compare.add_argument("--acme-ca-workers", type=_workers, default=1, metavar="N|auto",
                         help="acme-ca serve --workers (1; 2 uses both cores of this machine, "
                         "as 'auto' does)")
    compare.add_argument(
        "--acme-ca-storage",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="acme-ca's database: SQLite in its data directory, or a fresh PostgreSQL "
        f"database on {postgres.SERVER} per run, dropped after it (sqlite)",
    )
    compare.add_argument(
        "--acme-ca-replicas",
        type=int,
        metavar="N",
        help="run N acme-ca serve processes sharing the database and CA files behind "
        "haproxy (TCP, round robin, TLS passed through); their CPU is the server's, "
        "haproxy's is counted beside it (default: one acme-ca, no haproxy)",
    )
    compare.add_argument("--acme-ca-admin", action="store_true",
                         help="with the admin listener ([admin] listen): what the metrics "
                         "cost (the store's latency measured, shared between workers)")
    compare.add_argument(
        "--intermediate-key",
        default="file",
        metavar="file,token",
        help="where acme-ca's intermediate key is, one build each: a file, or a SoftHSM2 "
        "token the run makes (softhsm2-util; acme-ca init --intermediate-key-uri) (file)",
    )
    compare.add_argument(
        "--intermediate-key-type",
        metavar="T,...",
        help="intermediate key types, one build each (acme-ca init's: "
        f"{', '.join(builds.KEY_TYPES)}; default: serve's bootstrap, ec-p384)",
    )
    compare.add_argument(
        "--acme-ca-tree",
        action="append",
        metavar="LABEL=PATH",
        help="also run acme-ca from the source tree PATH (a checkout or `git archive` of "
        "another commit), named acme-ca[LABEL]; repeat for more",
    )
    compare.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    _common(compare)
    return parser.parse_args(argv)


def _workers(text: str) -> int | str:
    """--acme-ca-workers: a positive number, or "auto" (acme-ca counts the cores)."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a positive number nor 'auto'")
    return int(text)


def _policy(args: argparse.Namespace) -> PollPolicy:
    return PollPolicy(retry_after_cap=args.retry_after_cap)


def _emit(out: TextIO | None, rec: dict[str, Any]) -> None:
    if out is not None:
        report.write_json(out, rec)


async def cmd_run(args: argparse.Namespace, out: TextIO | None) -> int:
    pids = args.server_pid or []
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
    stats = await loadgen.run(config)
    rec = report.record(stats, server=args.label or None)
    print(report.format_run(rec), flush=True)
    _emit(out, rec)
    return 0 if stats.ok == args.n else 1


async def _start_acme_ca(
    workdir: Path, args: argparse.Namespace, responder: Http01Responder,
    stack: contextlib.AsyncExitStack, build: builds.Build,
) -> peers.Peer:
    """acme-ca as --acme-ca-storage and --acme-ca-replicas say, of ``build``; its
    database (if any) is dropped when ``stack`` closes, after the servers have stopped."""
    names = [args.names.format(i=i) for i in range(args.n)]
    database = None
    if args.acme_ca_storage == "postgresql":
        database = await stack.enter_async_context(postgres.fresh_database())
    if args.acme_ca_replicas is None:
        return await replicas.start_acme_ca(
            workdir, responder.port, names, args.acme_ca_workers, database,
            admin=args.acme_ca_admin, build=build,
        )
    return await replicas.start_replicas(
        workdir, responder.port, names, args.acme_ca_replicas, args.acme_ca_workers, database
    )


def acme_ca_setup(args: argparse.Namespace) -> str:
    """How acme-ca ran, in words, for the records and the table's title."""
    storage = "PostgreSQL" if args.acme_ca_storage == "postgresql" else "SQLite"
    workers = f", --workers {args.acme_ca_workers}" if args.acme_ca_workers != 1 else ""
    workers += ", admin listener" if args.acme_ca_admin else ""
    if args.acme_ca_replicas is None:
        return f"{storage}{workers}"
    return f"{storage}, {args.acme_ca_replicas} replica(s) behind haproxy{workers}"


async def _one(
    server: str | builds.Build,
    workdir: Path,
    args: argparse.Namespace,
    c: int,
    responder: Http01Responder,
    dns_port: int | None,
) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        if isinstance(server, builds.Build):
            build, server = server, server.name
            peer = await _start_acme_ca(workdir, args, responder, stack, build)
            extra: dict[str, Any] = {
                "server": server, "server_version": "", "setup": acme_ca_setup(args),
                "database": peer.database, "intermediate_key": build.key,
                "intermediate_key_type": build.key_type or "default",
                "tree": str(build.tree or ""),
            }
        else:
            assert dns_port is not None
            peer = await peers.start_pebble(workdir, responder.port, dns_port)
            extra = {"server": server, "server_version": peers.pebble_version()}
        stack.push_async_callback(asyncio.to_thread, peer.stop)
        config = loadgen.RunConfig(
            directory=peer.directory,
            ca_bundle=peer.ca_bundle,
            n=args.n,
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
        stats = await loadgen.run(config, responder)
        if "stalled" in stats.errors and server == "pebble":  # a Go server says where
            extra["server_hang"] = await asyncio.to_thread(peer.dump_go_stacks)
    return report.record(stats, server_log_problems=peer.log_problems(), **extra)


async def _attempts(
    server: str | builds.Build,
    root: Path,
    args: argparse.Namespace,
    c: int,
    run_no: int,
    responder: Http01Responder,
    dns_port: int | None,
) -> list[dict[str, Any]]:
    """One run of one server, repeated (up to --attempts) while it has errors."""
    done: list[dict[str, Any]] = []
    name = server.name if isinstance(server, builds.Build) else server
    slug = re.sub(r"[^\w.-]+", "-", name).strip("-")
    for attempt in range(1, args.attempts + 1):
        workdir = root / f"{slug}-c{c}-run{run_no}-{attempt}"
        rec = await _one(server, workdir, args, c, responder, dns_port)
        rec.update(run=run_no, attempt=attempt, complete=rec["ok"] == rec["n"])
        print(f"[{name} C={c} run {run_no}/{args.runs}, attempt {attempt}]")
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


async def cmd_compare(args: argparse.Namespace, out: TextIO | None) -> int:
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
                                       args.acme_ca_tree)
    except ValueError as exc:
        sys.exit(str(exc))
    if acme_cas != [builds.DEFAULT] and args.acme_ca_replicas is not None:
        sys.exit("--acme-ca-replicas runs the default build only (a file key, this tree)")
    runs: list[str | builds.Build] = [
        b for s in servers for b in (acme_cas if s == "acme-ca" else [s])]
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
            if "pebble" in servers:
                dns, dns_port = await peers.start_dns(root / "dns")
                stack.callback(peers.stop_process, dns)
            for c in concurrencies:
                for run_no in range(1, args.runs + 1):
                    order = runs if run_no % 2 else runs[::-1]  # alternate who goes first
                    for server in order:
                        done = await _attempts(server, root, args, c, run_no, responder, dns_port)
                        records.extend(done)
                        _emit_all(out, done)
                        failed += not done[-1]["complete"]
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"data directories and logs kept in {root}", file=sys.stderr)
    summaries = report.summarise(records)
    for summary in summaries:
        _emit(out, summary)
    print()
    print(f"n={args.n} key={args.key} runs={args.runs}, acme-ca on {acme_ca_setup(args)}: "
          "median (min-max)")
    print(report.format_summary(summaries, markdown=args.markdown), flush=True)
    return 0 if failed == 0 else 1


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
