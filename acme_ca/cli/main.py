"""`acme-ca`: parse the command line, load the configuration, run one command.

Every error meant for a user is an AcmeCaError: printed as one line on stderr,
exit status its ``exit_status``: 1, or 77 when a PKCS#11 token refused the PIN
(``errors.PinRefused``: docs/acme-ca.service does not restart that). Usage errors
exit 2 (argparse). A reader that closes the pipe early (`acme-ca certs list | head`)
ends the command quietly, exit status 141 (as a shell reports a command killed by
SIGPIPE). Anything else is a bug: one line with its type, and the traceback only with
ACME_CA_DEBUG=1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from acme_ca import __version__
from acme_ca.cli import (
    accounts,
    admin_cert,
    audit_commands,
    ca_init,
    ca_renew,
    certs,
    db,
    eab,
    keys,
    orders,
    serve,
    sign_csr,
    trust,
)
from acme_ca.cli.audit import who
from acme_ca.config import config_path_from_env, load_config
from acme_ca.domain.audit import cli_actor
from acme_ca.domain.origin import Origin, set_origin
from acme_ca.errors import AcmeCaError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acme-ca",
        description="A private certificate authority with an ACME (RFC 8555) front door.",
    )
    parser.add_argument("--version", action="version", version=f"acme-ca {__version__}")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration file (default: $ACME_CA_CONFIG, else built-in defaults)",
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="override [server] data_dir (CA files, database)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ca_init.add_parser(commands)
    ca_renew.add_parser(commands)
    serve.add_parser(commands)
    sign_csr.add_parser(commands)
    keys.add_parser(commands)
    eab.add_parser(commands)
    certs.add_parser(commands)
    accounts.add_parser(commands)
    orders.add_parser(commands)
    audit_commands.add_parser(commands)
    trust.add_parser(commands)
    db.add_parser(commands)
    admin_cert.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    set_origin(Origin(actor=cli_actor(who())))  # the audit log's who; `serve` sets its own
    try:
        overrides = {
            "server.data_dir": args.data_dir,
            **getattr(args, "overrides", lambda _: {})(args),
        }
        config = load_config(config_path_from_env(args.config), overrides)
        code = int(args.run(config, args) or 0)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except BrokenPipeError:
        # Python's recipe: what is still buffered goes nowhere, not to a traceback at exit
        with contextlib.suppress(OSError, ValueError):  # no file descriptor (in process)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except AcmeCaError as error:
        print(f"acme-ca: error: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print("acme-ca: interrupted", file=sys.stderr)
        return 130
    except Exception as bug:
        if os.environ.get("ACME_CA_DEBUG"):
            raise
        print(
            f"acme-ca: internal error: {type(bug).__name__}: {bug} "
            "(set ACME_CA_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 70


def path_arg(text: str) -> Path:
    return Path(text).expanduser()


if __name__ == "__main__":
    raise SystemExit(main())
