"""`acme-ca trust`: install the root in the OS trust store, or write a CA bundle."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from acme_ca.config import Config
from acme_ca.errors import AcmeCaError, ConfigError
from acme_ca.pki import files
from acme_ca.pki.trust import detect_family, system_bundle, trust_store


def add_parser(commands: Any) -> None:
    trust = commands.add_parser(
        "trust",
        help="print (or --apply) the commands that trust the root certificate",
        description="Print the commands that install the root certificate in this machine's "
        "trust store; --apply runs them (needs root). --bundle writes a PEM bundle "
        "for tools that take a CA file (REQUESTS_CA_BUNDLE, SSL_CERT_FILE, curl "
        "--cacert).",
    )
    trust.add_argument("--apply", action="store_true", help="run the commands (needs root)")
    trust.add_argument(
        "--os",
        choices=["debian", "rhel", "macos"],
        default=None,
        help="the trust store family (default: detected)",
    )
    trust.add_argument(
        "--name",
        default="acme-ca-root",
        help="file name of the installed anchor (default: acme-ca-root)",
    )
    trust.add_argument(
        "--bundle",
        type=Path,
        metavar="FILE",
        default=None,
        help="write the root certificate to FILE as a PEM bundle",
    )
    trust.add_argument(
        "--with-system",
        action="store_true",
        help="with --bundle: append the system's CA bundle after the root",
    )
    trust.set_defaults(run=run_trust)


def run_trust(config: Config, args: argparse.Namespace) -> int:
    root = config.ca.root_cert
    root_pem = files.pem(files.load_certificate(root, "root certificate"))
    if args.bundle is not None:
        data = root_pem
        if args.with_system:
            system = system_bundle()
            if system is None:
                raise AcmeCaError("--with-system: no system CA bundle found on this machine")
            data += system.read_bytes()
        files.write_file(args.bundle, data, mode=files.PUBLIC_FILE)
        print(f"Wrote {args.bundle}")
        if not args.apply and args.os is None:
            return 0
    family = args.os or detect_family()
    if family is None:
        raise ConfigError("cannot tell this system's trust store: pass --os debian|rhel|macos")
    store = trust_store(family, root, args.name)
    steps: list[tuple[str, ...]] = []
    if store.anchor is not None:
        steps.append(("cp", str(root), str(store.anchor)))
    steps.extend(store.commands)
    if not args.apply:
        print(f"# trust {root} on {store.description} (run as root, or use --apply):")
        for step in steps:
            print(shlex.join(step))
        return 0
    if store.anchor is not None:
        try:
            shutil.copyfile(root, store.anchor)
        except OSError as exc:
            raise AcmeCaError(
                f"cannot copy the root to {store.anchor}: {exc.strerror} (run as root)"
            ) from None
    for command in store.commands:
        if shutil.which(command[0]) is None:
            raise AcmeCaError(f"{command[0]} is not installed on this machine")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise AcmeCaError(f"{shlex.join(command)} failed: {detail[-1] if detail else ''}")
    print(f"The root {root} is trusted on this machine ({store.description}).")
    return 0
