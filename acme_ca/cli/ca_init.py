"""`acme-ca init`: create the hierarchy, or adopt one (--import); and `serve`'s bootstrap.

`init` makes the two-tier hierarchy (offline root, online intermediate, chain) under
the data directory, or with --import adopts one made with openssl. `bootstrap` makes
the default one when `serve` first starts with no CA. The intermediate key may be
generated on (or, with --import, already be on) a PKCS#11 token: see ca_hierarchy.py.
"""

from __future__ import annotations

import argparse
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from acme_ca.cli.ca_hierarchy import (
    INTERMEDIATE_KEY_TYPES,
    add_token_flags,
    check_pin,
    default_spec,
    duration_flag,
    hierarchy_files,
    permitted_names,
    permitted_networks,
    print_online_files,
    print_token_settings,
)
from acme_ca.cli.progress import progress
from acme_ca.cli.secrets import (
    INTERMEDIATE_PASSPHRASE_ENV,
    ROOT_PASSPHRASE_ENV,
    intermediate_passphrase,
    passphrase,
)
from acme_ca.clock import SystemClock
from acme_ca.config import Config
from acme_ca.errors import ConfigError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki import files
from acme_ca.pki.hierarchy import (
    HierarchyFiles,
    HierarchySpec,
    create_hierarchy,
    import_hierarchy,
)
from acme_ca.pki.keys import KeyType

ROOT_KEY_TYPES = [KeyType.RSA4096.value, KeyType.RSA3072.value, KeyType.EC_P384.value]


def add_parser(commands: Any) -> None:
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
    add_token_flags(
        init,
        "generate the intermediate key on this PKCS#11 token (RFC 7512 URI, e.g. "
        "'pkcs11:token=acme-ca;object=intermediate?pin-source=file:/run/secrets/pin'); "
        "with --import: the key of --intermediate-cert, already there. Default: [ca] "
        "intermediate_key when it is such a URI",
    )
    init.set_defaults(run=run_init)


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
        root_validity=duration_flag("--root-validity", args.root_validity),
        intermediate_validity=duration_flag("--intermediate-validity", args.intermediate_validity),
    )
    _check_country(args.country)
    check_pin(paths.intermediate_key)
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
    print_token_settings(config, paths)
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
    print_online_files(paths)
    if not on_token and (new_passphrase or source_passphrase):
        print(
            "The intermediate key is encrypted: give `serve` its passphrase with "
            f"[ca] intermediate_key_passphrase_file or ${INTERMEDIATE_PASSPHRASE_ENV}."
        )
    print_token_settings(config, paths)
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
    print_online_files(paths)
    permitted = [*(spec.permitted_domains or ()), *map(str, spec.permitted_networks)]
    constraints = ", ".join(permitted) if spec.permitted_domains else "none"
    print(f"  intermediate limited to: {constraints}")
    print(f"Root key: {paths.root_key}")
    if passphrase_file:
        print(f"  its passphrase: {passphrase_file}")
    print("  The root key belongs offline: the server never reads it. Move it (and its")
    print("  passphrase) to offline storage; it is needed only for `acme-ca intermediate renew`.")


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
