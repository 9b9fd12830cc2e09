"""`acme-ca intermediate renew`: sign a new intermediate with the offline root.

A new key (same name; the old constraints, or --constraints-from-config), on a file or
on a PKCS#11 token (see ca_hierarchy.py). The replaced intermediate and its key are
archived; `serve` destroys that key after ``archived_key_retention``. A running server
switches to the new one on SIGHUP.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from acme_ca.cli.ca_hierarchy import (
    INTERMEDIATE_KEY_TYPES,
    add_token_flags,
    check_pin,
    duration_flag,
    hierarchy_files,
    key_location,
    permitted_names,
    permitted_networks,
    print_token_settings,
)
from acme_ca.cli.progress import progress
from acme_ca.cli.secrets import ROOT_PASSPHRASE_ENV, intermediate_passphrase, passphrase
from acme_ca.clock import SystemClock
from acme_ca.config import Config
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.hierarchy import renew_intermediate
from acme_ca.pki.keys import KeyType
from acme_ca.pki.profiles import INTERMEDIATE_VALIDITY, name_constraints


def add_parser(commands: Any) -> None:
    intermediate = commands.add_parser("intermediate", help="manage the intermediate CA")
    actions = intermediate.add_subparsers(dest="action", required=True, metavar="ACTION")
    renew = actions.add_parser(
        "renew",
        help="sign a new intermediate with the offline root",
        description="Sign a new intermediate (new key, same name and constraints) with the "
        "root key; a running server picks it up on SIGHUP.",
    )
    renew.add_argument(
        "--root-key",
        type=Path,
        metavar="FILE",
        help="the root key (default: <data_dir>/offline/root-ca.key)",
    )
    renew.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help=f"root key passphrase (else ${ROOT_PASSPHRASE_ENV}, else a prompt)",
    )
    renew.add_argument("--validity", default="1825d", help="validity (default 1825d)")
    renew.add_argument(
        "--key-type",
        "--intermediate-key-type",  # init's name for it (init's --key-type is the root's)
        dest="key_type",
        choices=INTERMEDIATE_KEY_TYPES,
        default=None,
        help="new key type (default: the same as the current one)",
    )
    renew.add_argument(
        "--constraints-from-config",
        action="store_true",
        help="name constraints from the current [policy] (allowed_domains, "
        "allowed_ip_networks) and [server] instead of the old intermediate's",
    )
    add_token_flags(
        renew,
        "generate the new key on this PKCS#11 token (RFC 7512 URI) instead of where the "
        "current one is (its file, or its token)",
    )
    renew.set_defaults(run=run_renew)


def archived_key_retention(config: Config) -> timedelta:
    """How long `intermediate renew` keeps the replaced intermediate's key: the longest
    life a leaf it signed before the renewal can have under policy ([policy] max_validity,
    and the backdate as a margin). `serve` destroys the key after that, unless its store
    holds a certificate from it that ends later (authority/archived_keys.py)."""
    return config.policy.max_validity + config.policy.backdate


def run_renew(config: Config, args: argparse.Namespace) -> int:
    paths = hierarchy_files(config, args.root_key, args.pkcs11_module)
    key_uri: Pkcs11Uri | None = args.intermediate_key_uri
    check_pin(paths.intermediate_key)
    if key_uri is not None:
        check_pin(key_uri)
    root_passphrase = passphrase(
        file=args.passphrase_file, env=ROOT_PASSPHRASE_ENV, prompt="Root key passphrase"
    )
    assert root_passphrase is not None
    validity = (
        duration_flag("--validity", args.validity) if args.validity else INTERMEDIATE_VALIDITY
    )
    now = SystemClock().now()
    keep_key_until = now + archived_key_retention(config)
    old_on_token = isinstance(paths.intermediate_key, Pkcs11Uri)
    with progress("Renewing the intermediate", None) as bar:
        new = renew_intermediate(
            paths,
            root_passphrase=root_passphrase,
            intermediate_passphrase=intermediate_passphrase(
                config.ca.intermediate_key_passphrase_file),
            now=now,
            keep_old_key_until=keep_key_until,
            validity=validity,
            key_type=KeyType(args.key_type) if args.key_type else None,
            constraints=(
                name_constraints(permitted_names(config), permitted_networks(config))
                if args.constraints_from_config
                else "keep"
            ),
            key_uri=key_uri,
            step=bar.describe,
        )
    print(
        f"New intermediate {format(new.serial_number, 'x')}, valid until "
        f"{new.not_valid_after_utc:%Y-%m-%d}: {paths.intermediate_cert}"
    )
    new_paths = paths if key_uri is None else replace(paths, intermediate_key=key_uri)
    if isinstance(new_paths.intermediate_key, Pkcs11Uri):
        print(f"  its key: {key_location(new_paths.intermediate_key)}")
    print(f"  previous one kept in {paths.archive_dir()}")
    kept = "on the token (the archive names it)" if old_on_token else ""
    print(
        f"  its key{' ' + kept if kept else ''} will be destroyed by `acme-ca serve` after "
        f"{keep_key_until:%Y-%m-%d %H:%M} UTC, when no certificate it signed can be valid "
        "(later if its database holds one)"
    )
    if new_paths.intermediate_key == config.ca.intermediate_key:
        print("  send SIGHUP to running servers to switch to it without downtime")
    else:
        print_token_settings(config, new_paths, running=True)
    return 0
