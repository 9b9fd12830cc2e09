"""`acme-ca init` (new or --import) and `acme-ca intermediate renew`: the offline ceremonies."""

from __future__ import annotations

import argparse
import ipaddress
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from acme_ca.cli.progress import progress
from acme_ca.cli.secrets import (
    INTERMEDIATE_PASSPHRASE_ENV,
    ROOT_PASSPHRASE_ENV,
    intermediate_passphrase,
    passphrase,
)
from acme_ca.clock import SystemClock
from acme_ca.config import Config, offline_dir, parse_duration
from acme_ca.config_values import at_or_under_any
from acme_ca.errors import ConfigError
from acme_ca.pki import files
from acme_ca.pki.hierarchy import (
    HierarchyFiles,
    HierarchySpec,
    create_hierarchy,
    import_hierarchy,
    renew_intermediate,
)
from acme_ca.pki.keys import KeyType
from acme_ca.pki.profiles import INTERMEDIATE_VALIDITY, name_constraints

ROOT_KEY_TYPES = [KeyType.RSA4096.value, KeyType.RSA3072.value, KeyType.EC_P384.value]
INTERMEDIATE_KEY_TYPES = [k.value for k in KeyType]


def add_parsers(commands: Any) -> None:
    init = commands.add_parser(
        "init",
        help="create the root and intermediate CA, or --import existing ones",
        description="Create the two-tier hierarchy (offline root, online intermediate, chain) "
        "under the data directory, or adopt one made with openssl (--import).",
    )
    init.add_argument(
        "--root-key",
        type=Path,
        metavar="FILE",
        help="where the root key goes (default: <data_dir>/offline/root-ca.key)",
    )
    init.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help=f"root key passphrase (else ${ROOT_PASSPHRASE_ENV}, else a prompt); "
        "with --import: the passphrase of the imported intermediate key",
    )
    init.add_argument(
        "--intermediate-passphrase-file",
        type=Path,
        metavar="FILE",
        help="encrypt the intermediate key with this passphrase (else "
        f"[ca] intermediate_key_passphrase_file or ${INTERMEDIATE_PASSPHRASE_ENV}"
        "; else it is written unencrypted, 0600)",
    )
    init.add_argument(
        "--key-type",
        choices=ROOT_KEY_TYPES,
        default=KeyType.RSA4096.value,
        help="root key type (default: rsa4096, as the guide)",
    )
    init.add_argument(
        "--intermediate-key-type",
        choices=INTERMEDIATE_KEY_TYPES,
        default=KeyType.EC_P384.value,
        help="intermediate key type (default: ec-p384)",
    )
    init.add_argument("--org", default=None, help="organization (O) of both CA names")
    init.add_argument("--country", default=None, help="two-letter country (C) of both CA names")
    init.add_argument("--root-cn", default=None, help="root common name")
    init.add_argument("--intermediate-cn", default=None, help="intermediate common name")
    init.add_argument("--root-validity", default="3650d", help="root validity (default 3650d)")
    init.add_argument(
        "--intermediate-validity", default="1825d", help="intermediate validity (default 1825d)"
    )
    init.add_argument(
        "--no-name-constraints",
        action="store_true",
        help="do not limit the intermediate to [policy] allowed_domains",
    )
    init.add_argument(
        "--import",
        dest="import_",
        action="store_true",
        help="adopt an existing hierarchy instead of creating one",
    )
    init.add_argument("--root-cert", type=Path, metavar="FILE", help="with --import: root-ca.crt")
    init.add_argument(
        "--intermediate-cert", type=Path, metavar="FILE", help="with --import: intermediate-ca.crt"
    )
    init.add_argument(
        "--intermediate-key", type=Path, metavar="FILE", help="with --import: intermediate-ca.key"
    )
    init.set_defaults(run=run_init)

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
    renew.set_defaults(run=run_renew)


def hierarchy_files(config: Config, root_key: Path | None = None) -> HierarchyFiles:
    ca = config.ca
    return HierarchyFiles(
        root_key=root_key or offline_dir(config.server.data_dir) / "root-ca.key",
        root_cert=ca.root_cert,
        intermediate_cert=ca.intermediate_cert,
        intermediate_key=ca.intermediate_key,
        chain=ca.chain,
    )


def default_spec(config: Config) -> HierarchySpec:
    """The hierarchy `serve` bootstraps on first start, and `init` makes without flags."""
    return HierarchySpec(
        permitted_domains=permitted_names(config), permitted_networks=permitted_networks(config)
    )


def permitted_names(config: Config) -> tuple[str, ...]:
    """The DNS name constraints: the allowed domains, plus the server's own DNS name if
    outside them.

    The server's TLS certificate comes from the intermediate, so its names must pass the
    intermediate's constraints; a single-label hostname such as "localhost" is none of
    them (ServerConfig.own_names says why), so it never reaches the constraints.
    """
    names = list(config.policy.allowed_domains)
    for host in config.server.own_names[0]:
        if not at_or_under_any(host, names):
            names.append(host)
    return tuple(names)


def permitted_networks(config: Config) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """[policy] allowed_ip_networks, and the server's own addresses (its TLS certificate
    comes from the intermediate too)."""
    nets = list(config.policy.allowed_ip_networks)
    nets += [ipaddress.ip_network(address) for address in config.server.own_names[1]]
    return tuple(dict.fromkeys(nets))



def archived_key_retention(config: Config) -> timedelta:
    """How long `intermediate renew` keeps the replaced intermediate's key: the longest
    life a leaf it signed before the renewal can have under policy ([policy] max_validity,
    and the backdate as a margin). `serve` destroys the key after that, unless its store
    holds a certificate from it that ends later (authority/archived_keys.py)."""
    return config.policy.max_validity + config.policy.backdate


def _duration_flag(name: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def run_init(config: Config, args: argparse.Namespace) -> int:
    paths = hierarchy_files(config, args.root_key)
    clock = SystemClock()
    new_passphrase = intermediate_passphrase(
        args.intermediate_passphrase_file or config.ca.intermediate_key_passphrase_file
    )
    if args.import_:
        missing = [
            flag
            for flag, value in (
                ("--root-cert", args.root_cert),
                ("--intermediate-cert", args.intermediate_cert),
                ("--intermediate-key", args.intermediate_key),
            )
            if value is None
        ]
        if missing:
            raise ConfigError(f"--import needs {', '.join(missing)}")
        source_passphrase = passphrase(
            file=args.passphrase_file,
            env=INTERMEDIATE_PASSPHRASE_ENV,
            prompt="Passphrase of the intermediate key"
            if _encrypted(args.intermediate_key)
            else None,
            required=False,
        )
        import_hierarchy(
            root_cert_path=args.root_cert,
            intermediate_cert_path=args.intermediate_cert,
            intermediate_key_path=args.intermediate_key,
            passphrase=source_passphrase,
            paths=paths,
            new_passphrase=new_passphrase or source_passphrase,
            now=clock.now(),
        )
        print(f"Imported the hierarchy into {paths.intermediate_cert.parent}")
        _print_online_files(paths)
        if new_passphrase or source_passphrase:
            print(
                "The intermediate key is encrypted: give `serve` its passphrase with "
                f"[ca] intermediate_key_passphrase_file or ${INTERMEDIATE_PASSPHRASE_ENV}."
            )
        return 0
    org = args.org
    spec = HierarchySpec(
        organization=org,
        country=args.country,
        root_common_name=args.root_cn or f"{org or 'acme-ca'} Root CA",
        intermediate_common_name=args.intermediate_cn or f"{org or 'acme-ca'} Intermediate CA",
        root_key_type=KeyType(args.key_type),
        intermediate_key_type=KeyType(args.intermediate_key_type),
        permitted_domains=None if args.no_name_constraints else permitted_names(config),
        permitted_networks=() if args.no_name_constraints else permitted_networks(config),
        root_validity=_duration_flag("--root-validity", args.root_validity),
        intermediate_validity=_duration_flag("--intermediate-validity", args.intermediate_validity),
    )
    _check_country(args.country)
    root_passphrase = passphrase(
        file=args.passphrase_file,
        env=ROOT_PASSPHRASE_ENV,
        prompt="New root key passphrase",
        new=True,
    )
    assert root_passphrase is not None
    with progress("Generating keys", None) as bar:
        create_hierarchy(
            spec,
            paths,
            root_passphrase=root_passphrase,
            intermediate_passphrase=new_passphrase,
            now=clock.now(),
            step=bar.describe,
        )
    print(
        f"Created a {spec.root_key_type} root and a {spec.intermediate_key_type} intermediate CA."
    )
    print_created(paths, spec)
    return 0


def _check_country(country: str | None) -> None:
    if country is not None and (len(country) != 2 or not country.isalpha()):
        raise ConfigError(f"--country: {country!r} is not a two-letter country code")


def _encrypted(path: Path) -> bool:
    try:
        return b"ENCRYPTED" in path.read_bytes()
    except OSError:
        return False


def print_created(
    paths: HierarchyFiles, spec: HierarchySpec, passphrase_file: Path | None = None
) -> None:
    _print_online_files(paths)
    permitted = [*(spec.permitted_domains or ()), *map(str, spec.permitted_networks)]
    constraints = ", ".join(permitted) if spec.permitted_domains else "none"
    print(f"  intermediate limited to: {constraints}")
    print(f"Root key: {paths.root_key}")
    if passphrase_file:
        print(f"  its passphrase: {passphrase_file}")
    print("  The root key belongs offline: the server never reads it. Move it (and its")
    print("  passphrase) to offline storage; it is needed only for `acme-ca intermediate renew`.")


def _print_online_files(paths: HierarchyFiles) -> None:
    print(f"  root certificate:     {paths.root_cert}")
    print(f"  intermediate:         {paths.intermediate_cert}")
    print(f"  intermediate key:     {paths.intermediate_key} (0600)")
    print(f"  chain (for clients):  {paths.chain}")


def bootstrap(config: Config) -> None:
    """First start of `serve` with no CA: make the default hierarchy.

    The root key passphrase comes from $ACME_CA_ROOT_PASSPHRASE, or is generated and
    written 0600 beside the root key, so that the first start needs no prompt.
    """
    paths = hierarchy_files(config)
    spec = default_spec(config)
    root_passphrase = passphrase(file=None, env=ROOT_PASSPHRASE_ENV, prompt=None, required=False)
    passphrase_file = None
    if root_passphrase is None:
        root_passphrase = secrets.token_urlsafe(32).encode()
        passphrase_file = paths.root_key.with_name("root-ca.passphrase")
        files.write_file(
            passphrase_file, root_passphrase + b"\n", mode=files.PRIVATE_FILE, exclusive=True
        )
    create_hierarchy(
        spec,
        paths,
        root_passphrase=root_passphrase,
        intermediate_passphrase=intermediate_passphrase(config.ca.intermediate_key_passphrase_file),
        now=SystemClock().now(),
    )
    print("No CA found: created one.")
    print_created(paths, spec, passphrase_file)


def run_renew(config: Config, args: argparse.Namespace) -> int:
    paths = hierarchy_files(config, args.root_key)
    root_passphrase = passphrase(
        file=args.passphrase_file, env=ROOT_PASSPHRASE_ENV, prompt="Root key passphrase"
    )
    assert root_passphrase is not None
    validity = (
        _duration_flag("--validity", args.validity) if args.validity else INTERMEDIATE_VALIDITY
    )
    now = SystemClock().now()
    keep_key_until = now + archived_key_retention(config)
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
            step=bar.describe,
        )
    print(
        f"New intermediate {format(new.serial_number, 'x')}, valid until "
        f"{new.not_valid_after_utc:%Y-%m-%d}: {paths.intermediate_cert}"
    )
    print(f"  previous one kept in {paths.archive_dir()}")
    print(
        f"  its key will be destroyed by `acme-ca serve` after {keep_key_until:%Y-%m-%d %H:%M} "
        "UTC, when no certificate it signed can be valid (later if its database holds one)"
    )
    print("  send SIGHUP to running servers to switch to it without downtime")
    return 0
