"""What `acme-ca init`, `acme-ca intermediate renew` and `serve`'s bootstrap share.

Where the hierarchy's files are (``hierarchy_files``: [ca], the root key under
<data_dir>/offline), which names the intermediate may sign for (``permitted_names``,
``permitted_networks``), and the PKCS#11 token handling of issue 14: the intermediate
key is a file, or a key on a token (an HSM; RFC 7512 URI) named by
`--intermediate-key-uri` (with `--pkcs11-module`), else by [ca] intermediate_key when
it is a ``pkcs11:`` URI (with [ca] pkcs11_module). A token key is generated on the
token and never leaves it; no key file is written. A URI's PIN is read up front
(``check_pin``), and the summaries never show a PIN value.
"""

from __future__ import annotations

import argparse
import ipaddress
from datetime import timedelta
from pathlib import Path

from acme_ca.config import Config, offline_dir, parse_duration
from acme_ca.config_values import at_or_under_any
from acme_ca.errors import ConfigError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.hierarchy import HierarchyFiles, HierarchySpec
from acme_ca.pki.keys import KeyType

INTERMEDIATE_KEY_TYPES = [k.value for k in KeyType]


def add_token_flags(parser: argparse.ArgumentParser, uri_help: str) -> None:
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


def check_pin(uri: Pkcs11Uri | Path) -> None:
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


def duration_flag(name: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def print_online_files(paths: HierarchyFiles) -> None:
    print(f"  root certificate:     {paths.root_cert}")
    print(f"  intermediate:         {paths.intermediate_cert}")
    print(f"  intermediate key:     {key_location(paths.intermediate_key)}")
    print(f"  chain (for clients):  {paths.chain}")


def key_location(location: Path | Pkcs11Uri) -> str:
    """Where the intermediate key is, for the summaries: a URI never shows a PIN value."""
    if isinstance(location, Pkcs11Uri):
        return f"{location} (on the token; it never leaves it)"
    return f"{location} (0600)"


def print_token_settings(config: Config, paths: HierarchyFiles, *, running: bool = False
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
