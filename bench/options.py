"""The command line of ``python -m bench`` (its usage is bench/__main__.py's docstring)."""

from __future__ import annotations

import argparse
from pathlib import Path

from acme_ca import config_values
from bench import acmelib, builds, loadgen, postgres
from bench.client import KEY_TYPES

CLIENTS = ("loadgen", "acme-lib", "lego", "certbot")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=200, help="certificates per run (200)")
    parser.add_argument(
        "--client",
        default="loadgen",
        help="the ACME client(s), comma-separated: loadgen (bench's own lean generator), "
        "acme-lib (certbot's acme library, bench/acmelib.py), lego, certbot "
        "(bench/programs.py) (loadgen)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=acmelib.DEFAULT_POLL_S,
        metavar="S",
        help="acme-lib: seconds between polls, where certbot sleeps 1 s (%(default)s)",
    )
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


def _workers(text: str) -> int | str:
    """--acme-ca-workers: what ``[server] workers`` takes (``config_values.workers``);
    "auto" is passed on as it is, for acme-ca to count its cores."""
    try:
        count = config_values.workers(None, text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text if text == "auto" else count


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="the ACME load generator")
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
    compare.add_argument(
        "--acme-ca-python",
        action="append",
        metavar="LABEL=PATH",
        help="also run this tree's acme-ca under the Python at PATH (a virtualenv with "
        "acme-ca's dependencies), named acme-ca{LABEL}; repeat for more",
    )
    compare.add_argument(
        "--client-runs",
        type=int,
        default=10,
        metavar="N",
        help="lego, certbot: sequential runs of the program per server and run (10)",
    )
    compare.add_argument(
        "--resolve",
        choices=("hosts", "dns"),
        help="how acme-ca finds the benchmark names: [validation.hosts], or over DNS from "
        "pebble-challtestsrv as Pebble does ([validation] resolvers) (default: hosts for "
        "loadgen, so that older figures stay comparable; dns for the other clients)",
    )
    compare.add_argument("--markdown", action="store_true",
                         help="print the tables (one per client) as Markdown")
    _common(compare)
    return parser.parse_args(argv)
