"""`acme-ca init` (new or --import) and `acme-ca intermediate renew`: the offline ceremonies.

The intermediate key is a file, or a key on a PKCS#11 token (an HSM; RFC 7512 URI):
`--intermediate-key-uri` (with `--pkcs11-module`), else [ca] intermediate_key when it
is a ``pkcs11:`` URI (with [ca] pkcs11_module). A token key is generated on the token
and never leaves it; no key file is written.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
from dataclasses import replace
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
from acme_ca.pkcs11_uri import Pkcs11Uri
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
    _add_token_flags(
        init,
        "generate the intermediate key on this PKCS#11 token (RFC 7512 URI, e.g. "
        "'pkcs11:token=acme-ca;object=intermediate?pin-source=file:/run/secrets/pin'); "
        "with --import: the key of --intermediate-cert, already there. Default: [ca] "
        "intermediate_key when it is such a URI",
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
    _add_token_flags(
        renew,
        "generate the new key on this PKCS#11 token (RFC 7512 URI) instead of where the "
        "current one is (its file, or its token)",
    )
    renew.set_defaults(run=run_renew)


def _add_token_flags(parser: argparse.ArgumentParser, uri_help: str) -> None:
    parser.add_argument("--intermediate-key-uri", type=_uri_flag, metavar="URI", help=uri_help)
    parser.add_argument(
        "--pkcs11-module",
        type=Path,
        metavar="PATH",
        help="the token's PKCS#11 library (default: [ca] pkcs11_module, or the URI's "
        "module-path)",
    )


def _uri_flag(text: str) -> Pkcs11Uri:
    try:
        return Pkcs11Uri.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a PKCS#11 URI: {exc}") from None


def hierarchy_files(
    config: Config, root_key: Path | None = None, pkcs11_module: Path | None = None
) -> HierarchyFiles:
    """The hierarchy the configuration names; ``pkcs11_module`` overrides [ca]'s."""
    ca = config.ca
    return HierarchyFiles(
        root_key=root_key or offline_dir(config.server.data_dir) / "root-ca.key",
        root_cert=ca.root_cert,
        intermediate_cert=ca.intermediate_cert,
        intermediate_key=ca.intermediate_key,
        chain=ca.chain,
        pkcs11_module=pkcs11_module or ca.pkcs11_module,
    )


def _check_pin(uri: Pkcs11Uri | Path) -> None:
    """PkiError now (before any passphrase is asked for) when a token's PIN cannot be read."""
    if isinstance(uri, Pkcs11Uri):
        uri.pin()


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
    paths = hierarchy_files(config, args.root_key, args.pkcs11_module)
    if args.intermediate_key_uri is not None:
        paths = replace(paths, intermediate_key=args.intermediate_key_uri)
    clock = SystemClock()
    new_passphrase = intermediate_passphrase(
        args.intermediate_passphrase_file or config.ca.intermediate_key_passphrase_file
    )
    if args.import_:
        return _run_import(config, args, paths, new_passphrase, clock)
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
    _check_pin(paths.intermediate_key)
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
    _print_token_settings(config, paths)
    return 0


def _run_import(
    config: Config,
    args: argparse.Namespace,
    paths: HierarchyFiles,
    new_passphrase: bytes | None,
    clock: SystemClock,
) -> int:
    """`init --import`: the key from --intermediate-key (a file), or on the token that
    --intermediate-key-uri (or [ca] intermediate_key) names."""
    on_token = isinstance(paths.intermediate_key, Pkcs11Uri)
    if args.intermediate_key is not None and args.intermediate_key_uri is not None:
        raise ConfigError("--intermediate-key and --intermediate-key-uri: give one, not both")
    if args.intermediate_key is not None and on_token:
        raise ConfigError(
            f"--intermediate-key: [ca] intermediate_key names a key on a token "
            f"({paths.intermediate_key}), not a file: import with --intermediate-key-uri, "
            "or set [ca] intermediate_key to a path"
        )
    missing = [
        flag
        for flag, value in (
            ("--root-cert", args.root_cert),
            ("--intermediate-cert", args.intermediate_cert),
            ("--intermediate-key (or --intermediate-key-uri)",
             paths.intermediate_key if on_token else args.intermediate_key),
        )
        if value is None
    ]
    if missing:
        raise ConfigError(f"--import needs {', '.join(missing)}")
    source_passphrase = None
    if not on_token:
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
        intermediate_key=paths.intermediate_key if on_token else args.intermediate_key,
        passphrase=source_passphrase,
        paths=paths,
        new_passphrase=new_passphrase or source_passphrase,
        now=clock.now(),
    )
    print(f"Imported the hierarchy into {paths.intermediate_cert.parent}")
    _print_online_files(paths)
    if not on_token and (new_passphrase or source_passphrase):
        print(
            "The intermediate key is encrypted: give `serve` its passphrase with "
            f"[ca] intermediate_key_passphrase_file or ${INTERMEDIATE_PASSPHRASE_ENV}."
        )
    _print_token_settings(config, paths)
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
    print(f"  intermediate key:     {_key_location(paths.intermediate_key)}")
    print(f"  chain (for clients):  {paths.chain}")


def _key_location(location: Path | Pkcs11Uri) -> str:
    """Where the intermediate key is, for the summaries: a URI never shows a PIN value."""
    if isinstance(location, Pkcs11Uri):
        return f"{location} (on the token; it never leaves it)"
    return f"{location} (0600)"


def _print_token_settings(config: Config, paths: HierarchyFiles, *, running: bool = False
                          ) -> None:
    """When the key's token came from flags, what the configuration must say for `serve`
    (``running``: a server may run already, and only a restart reads [ca] again)."""
    uri, module = paths.intermediate_key, paths.pkcs11_module
    if not isinstance(uri, Pkcs11Uri):
        return
    if uri == config.ca.intermediate_key and module == config.ca.pkcs11_module:
        return
    restart = " (then restart it: a reload keeps the [ca] it started with)" if running else ""
    print(f"Set in the configuration, for `serve`{restart}:")
    print("  [ca]")
    print(f'  intermediate_key = "{uri}"')
    if module is not None:
        print(f'  pkcs11_module = "{module}"')
    if uri.pin_value is not None:
        print("  (the PIN value given is not repeated: name a file with ?pin-source=file:PATH)")


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
    try:
        create_hierarchy(
            spec,
            paths,
            root_passphrase=root_passphrase,
            intermediate_passphrase=intermediate_passphrase(
                config.ca.intermediate_key_passphrase_file),
            now=SystemClock().now(),
        )
    except BaseException:  # e.g. a token it cannot use: the next start must not find it
        if passphrase_file is not None:
            passphrase_file.unlink(missing_ok=True)
        raise
    print("No CA found: created one.")
    print_created(paths, spec, passphrase_file)


def run_renew(config: Config, args: argparse.Namespace) -> int:
    paths = hierarchy_files(config, args.root_key, args.pkcs11_module)
    key_uri: Pkcs11Uri | None = args.intermediate_key_uri
    _check_pin(paths.intermediate_key)
    if key_uri is not None:
        _check_pin(key_uri)
    root_passphrase = passphrase(
        file=args.passphrase_file, env=ROOT_PASSPHRASE_ENV, prompt="Root key passphrase"
    )
    assert root_passphrase is not None
    validity = (
        _duration_flag("--validity", args.validity) if args.validity else INTERMEDIATE_VALIDITY
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
        print(f"  its key: {_key_location(new_paths.intermediate_key)}")
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
        _print_token_settings(config, new_paths, running=True)
    return 0
