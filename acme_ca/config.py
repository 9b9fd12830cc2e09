"""Configuration: one TOML file, defaults for everything, validated at load.

    config = load_config(Path("acme-ca.toml"), overrides={"server.listen": "0.0.0.0:8555"})

Every value is checked when the file is read; a wrong one raises ConfigError whose
message names the key (``policy.max_validity``) and what is allowed. Relative paths
in a file are taken relative to that file's directory; without a file, relative to
the working directory. Overrides (from command-line flags) use the same dotted names
and pass through the same checks.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from acme_ca import config_values as values
from acme_ca.config_ca import SCHEMA as CA_SCHEMA
from acme_ca.config_ca import CaConfig, default_ca_paths, read_ca
from acme_ca.config_networks import (
    DEFAULT_ALLOWED_NETWORKS,
    IpAddress,
    IpNetwork,
    default_allowed_networks,
    ip_or_none,
)
from acme_ca.config_operations import SCHEMA as ADMIN_SCHEMA
from acme_ca.config_operations import AdminConfig, read_admin
from acme_ca.config_policy import (
    DEFAULT_PROFILE,
    LimitsConfig,
    Profile,
    RetentionConfig,
    read_limits,
    read_profiles,
    read_retention,
)
from acme_ca.config_revocation import SCHEMA as REVOCATION_SCHEMA
from acme_ca.config_revocation import (
    RevocationConfig,
    default_publication_url,
    read_revocation,
)
from acme_ca.config_values import format_duration, parse_duration, parse_host_port
from acme_ca.errors import ConfigError

__all__ = [  # the value helpers live in config_values, [ca] in config_ca, [revocation] in
    # config_revocation; these are re-exported for callers
    "CaConfig",
    "Config",
    "RevocationConfig",
    "default_ca_paths",
    "default_publication_url",
    "format_duration",
    "load_config",
    "parse_duration",
    "parse_host_port",
]

ENV_CONFIG = "ACME_CA_CONFIG"
DEFAULT_DATA_DIR = "acme-ca-data"

@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: str = "127.0.0.1:8555"
    hostname: str = "localhost"
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    external_url: str | None = None
    workers: int = 1  # processes; "auto" in the file: one per core (config_values.workers)
    # How the count was given, for the startup line only: a reload compares the count
    workers_auto: bool = field(default=False, compare=False)
    log_format: str = "text"  # "text" or "json" (one JSON object a line)
    # SIGTERM: how long validations and finalizations in flight may take to finish
    shutdown_timeout: timedelta = timedelta(seconds=30)

    @property
    def listen_host(self) -> str:
        return parse_host_port(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return parse_host_port(self.listen)[1]

    @property
    def external_host(self) -> str | None:
        """The host of external_url (no brackets around IPv6), or None without one."""
        return urlsplit(self.external_url).hostname if self.external_url else None

    @property
    def external_port(self) -> int | None:
        """The port of external_url (443 when it names none), or None without one."""
        return (urlsplit(self.external_url).port or 443) if self.external_url else None

    @property
    def own_names(self) -> tuple[tuple[str, ...], tuple[IpAddress, ...]]:
        """The DNS names and IP addresses of the server's own TLS certificate, which the
        intermediate's name constraints permit; the first is the host of `base_url`.

        - `hostname`, when a certificate can carry it lint-clean: an IP address, or a
          DNS name of two labels or more. A single label such as the default
          "localhost" is left out: pkilint refuses it in a dNSName, in a SAN as in a
          name constraint ("pkix.invalid_domain_name_syntax"), and the CA/Browser
          Forum rules and many clients want fully qualified names.
        - the listen address, unless it is 0.0.0.0 or ::;
        - when neither names the server (a single-label hostname on 0.0.0.0 or ::),
          the loopback address of that family: what "localhost" stands for.

        So the Quick start (hostname "localhost", listening on 127.0.0.1:8555) serves
        https://127.0.0.1:8555/directory with a certificate for IP 127.0.0.1; certbot,
        lego and Caddy check an IP address in the server URL against the iPAddress SAN.
        """
        dns: list[str] = []
        ips: list[IpAddress] = []
        hostname = ip_or_none(self.hostname)
        if hostname is not None:
            ips.append(hostname)
        elif "." in self.hostname:
            dns.append(self.hostname)
        listening = ip_or_none(self.listen_host)
        if listening is not None and not listening.is_unspecified:
            ips.append(listening)
        if not dns and not ips:
            v6 = listening is not None and listening.version == 6
            ips.append(ipaddress.ip_address("::1" if v6 else "127.0.0.1"))
        return tuple(dict.fromkeys(dns)), tuple(dict.fromkeys(ips))

    @property
    def base_url(self) -> str:
        """The base of every URL the server emits, without a trailing slash."""
        if self.external_url:
            return self.external_url.rstrip("/")
        dns, ips = self.own_names
        host = dns[0] if dns else f"[{ips[0]}]" if ips[0].version == 6 else str(ips[0])
        return f"https://{host}:{self.listen_port}"


DEFAULT_POOL_SIZE = 10


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str
    pool_size: int = DEFAULT_POOL_SIZE  # PostgreSQL: the most connections one process opens


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    allowed_domains: tuple[str, ...] = ("bluerobin.local",)
    default_validity: timedelta = timedelta(days=7)
    max_validity: timedelta = timedelta(days=90)
    backdate: timedelta = timedelta(minutes=1)
    denied_domains: tuple[str, ...] = ()
    allowed_ip_networks: tuple[IpNetwork, ...] = ()
    order_lifetime: timedelta = timedelta(days=7)
    authorization_lifetime: timedelta = timedelta(days=7)  # a pending authorization
    valid_authorization_lifetime: timedelta = timedelta(days=1)  # reuse of a valid one
    blocked_keys_file: Path | None = None
    # SHA-256 digests of the DER SubjectPublicKeyInfo of every key in blocked_keys_file,
    # read once at load (config_values.key_blocklist); pki/goodkey.py refuses them,
    # whatever the encoding hashed (goodkey.key_hashes).
    blocked_keys: frozenset[bytes] = field(default=frozenset(), repr=False)


@dataclass(frozen=True, slots=True)
class AcmeConfig:
    """What the directory's meta object advertises (RFC 8555 7.1.1)."""

    website: str | None = None
    terms_of_service: str | None = None
    # newAccount must carry a valid External Account Binding (RFC 8555 7.3.4)
    eab_required: bool = False
    # the profile of an order that names none (draft-ietf-acme-profiles)
    default_profile: str = DEFAULT_PROFILE


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    http01_port: int = 80
    tlsalpn01_port: int = 443
    resolvers: tuple[str, ...] = ()
    hosts: Mapping[str, str] = field(default_factory=dict)
    zone_resolvers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    caa_identities: tuple[str, ...] = ()
    allowed_networks: tuple[IpNetwork, ...] = DEFAULT_ALLOWED_NETWORKS
    timeout: timedelta = timedelta(seconds=10)
    max_in_flight: int = 64
    max_in_flight_per_account: int = 8


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    storage: StorageConfig
    ca: CaConfig
    policy: PolicyConfig
    validation: ValidationConfig
    acme: AcmeConfig = field(default_factory=AcmeConfig)
    source: Path | None = None  # the file it was read from, if any
    # Who may get what (config_policy.py): [profiles.NAME], [limits], [retention]. The
    # profiles are read_profiles' (the defaults and the tables over them): load_config's.
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    revocation: RevocationConfig = field(default_factory=RevocationConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)


def offline_dir(data_dir: Path) -> Path:
    """Where `acme-ca init` puts the root key: it belongs offline, the server never reads it."""
    return data_dir / "offline"


def config_path_from_env(explicit: str | None) -> Path | None:
    """The --config flag, else $ACME_CA_CONFIG, else no file."""
    chosen = explicit or os.environ.get(ENV_CONFIG)
    return Path(chosen) if chosen else None


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read and check a TOML file (or none: all defaults), then apply dotted overrides."""
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        base = path.resolve().parent
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{section} must be a table ([{section}])")
        if _SCHEMA.get(section, {}).get(key, ("", None))[1] is values.path and isinstance(
            value, str
        ):
            try:  # a flag: relative to the cwd
                value = str(values.expand_user(value).absolute())
            except ValueError as exc:
                raise ConfigError(f"{dotted}: {exc}") from None
        table[key] = value
    # Tables of tables, read by config_policy rather than through _SCHEMA.
    policy_tables = {name: raw.pop(name, None) for name in _POLICY_TABLES}
    return _build(_Reader(raw, base), path, policy_tables)


_POLICY_TABLES = ("profiles", "limits", "retention")


class _Reader:
    """Takes values out of the raw TOML tables, checking each against the schema."""

    def __init__(self, raw: dict[str, Any], base: Path) -> None:
        unknown = sorted(set(raw) - set(_SCHEMA))
        if unknown:
            known = ", ".join(sorted({*_SCHEMA, *_POLICY_TABLES}))
            raise ConfigError(f"unknown section [{unknown[0]}] (known: {known})")
        for section, table in raw.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{section} must be a table ([{section}])")
            extra = sorted(set(table) - set(_SCHEMA[section]))
            if extra:
                known = ", ".join(_SCHEMA[section])
                raise ConfigError(f"unknown key {section}.{extra[0]} (known: {known})")
        self.raw = raw
        self.base = base

    def get(self, dotted: str, default: Any) -> Any:
        section, _, key = dotted.partition(".")
        if key not in self.raw.get(section, {}):
            return default
        value = self.raw[section][key]
        kind, convert = _SCHEMA[section][key]
        try:
            return convert(self, value)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{dotted}: {exc} (expected {kind})") from None

    def path(self, value: Any) -> Path:
        text = values.string(self, value)
        expanded = values.expand_user(text)
        return expanded if expanded.is_absolute() else self.base / expanded


_Conv = Callable[[_Reader, Any], Any]
_SCHEMA: dict[str, dict[str, tuple[str, _Conv]]] = {
    "server": {
        "listen": ("'host:port', e.g. '127.0.0.1:8555'", values.listen),
        "hostname": ("a DNS name or address", values.hostname),
        "data_dir": ("a directory path", values.path),
        "external_url": ("an https:// URL", values.external_url),
        "workers": ("a positive number of processes, or 'auto': one per core",
                    values.workers),
        "log_format": ("'text' or 'json'", values.log_format),
        "shutdown_timeout": ("a duration from 1s to 10m, such as '30s'", values.duration),
    },
    "storage": {
        "url": ("'sqlite:///<path>' or 'postgresql://...'", values.storage_url),
        "pool_size": ("an integer from 1 to 1000", values.pool_size),
    },
    "ca": CA_SCHEMA,
    "policy": {
        "allowed_domains": ("a list of domain suffixes", values.domains),
        "default_validity": ("a duration such as '24h' or '7d'", values.duration),
        "max_validity": ("a duration such as '24h' or '90d'", values.duration),
        "backdate": ("a duration such as '1m'", values.duration),
        "denied_domains": ("a list of domain suffixes", values.domains_or_empty),
        "allowed_ip_networks": ("a list of CIDR networks such as '10.0.0.0/8'", values.networks),
        "order_lifetime": ("a duration such as '7d'", values.duration),
        "authorization_lifetime": ("a duration such as '7d'", values.duration),
        "valid_authorization_lifetime": ("a duration such as '24h'", values.duration),
        "blocked_keys_file": (
            "a file of key hashes, one a line, as `acme-ca keys hash` prints them",
            values.key_blocklist,
        ),
    },
    "acme": {
        "website": ("an http(s):// URL", values.url),
        "terms_of_service": ("an http(s):// URL", values.url),
        "eab_required": ("true or false", values.boolean),
        "default_profile": ("the name of a profile", values.string),
    },
    "revocation": REVOCATION_SCHEMA,
    "admin": ADMIN_SCHEMA,
    "validation": {
        "http01_port": ("a port from 1 to 65535", values.port),
        "tlsalpn01_port": ("a port from 1 to 65535", values.port),
        "resolvers": ("a list of 'ip:port'", values.resolvers),
        "hosts": ("a table of name = 'ip address'", values.hosts),
        "zone_resolvers": ("a table of suffix = ['ip:port', ...]", values.zone_resolvers),
        "caa_identities": ("a list of domain names", values.domains_or_empty),
        "allowed_networks": ("a list of CIDR networks", values.networks),
        "timeout": ("a duration such as '10s'", values.duration),
        "max_in_flight": ("a positive integer", values.positive),
        "max_in_flight_per_account": ("a positive integer", values.positive),
    },
}


def _build(r: _Reader, source: Path | None, policy_tables: Mapping[str, Any]) -> Config:
    defaults = ServerConfig()
    data_dir = r.get("server.data_dir", r.path(str(defaults.data_dir)))
    server = ServerConfig(
        listen=r.get("server.listen", defaults.listen),
        hostname=r.get("server.hostname", defaults.hostname),
        data_dir=data_dir,
        external_url=r.get("server.external_url", None),
        workers=r.get("server.workers", defaults.workers),
        workers_auto=r.raw.get("server", {}).get("workers") == "auto",
        log_format=r.get("server.log_format", defaults.log_format),
        shutdown_timeout=r.get("server.shutdown_timeout", defaults.shutdown_timeout),
    )
    if not timedelta(seconds=1) <= server.shutdown_timeout <= timedelta(minutes=10):
        raise ConfigError(f"server.shutdown_timeout: {format_duration(server.shutdown_timeout)}"
                          " is outside 1s to 10m")
    ca = read_ca(r.get, data_dir)
    storage = StorageConfig(
        url=r.get("storage.url", f"sqlite:///{data_dir / 'acme-ca.db'}"),
        pool_size=r.get("storage.pool_size", DEFAULT_POOL_SIZE),
    )
    p = PolicyConfig()
    blocked_keys_file, blocked_keys = r.get("policy.blocked_keys_file", (None, frozenset()))
    policy = PolicyConfig(
        allowed_domains=r.get("policy.allowed_domains", p.allowed_domains),
        default_validity=r.get("policy.default_validity", p.default_validity),
        max_validity=r.get("policy.max_validity", p.max_validity),
        backdate=r.get("policy.backdate", p.backdate),
        denied_domains=r.get("policy.denied_domains", p.denied_domains),
        allowed_ip_networks=r.get("policy.allowed_ip_networks", p.allowed_ip_networks),
        order_lifetime=r.get("policy.order_lifetime", p.order_lifetime),
        authorization_lifetime=r.get("policy.authorization_lifetime", p.authorization_lifetime),
        valid_authorization_lifetime=r.get(
            "policy.valid_authorization_lifetime", p.valid_authorization_lifetime
        ),
        blocked_keys_file=blocked_keys_file,
        blocked_keys=blocked_keys,
    )
    if policy.default_validity > policy.max_validity:
        raise ConfigError(
            f"policy.default_validity ({format_duration(policy.default_validity)}) "
            f"exceeds policy.max_validity ({format_duration(policy.max_validity)})"
        )
    v = ValidationConfig()
    validation = ValidationConfig(
        http01_port=r.get("validation.http01_port", v.http01_port),
        tlsalpn01_port=r.get("validation.tlsalpn01_port", v.tlsalpn01_port),
        resolvers=r.get("validation.resolvers", v.resolvers),
        hosts=r.get("validation.hosts", {}),
        zone_resolvers=r.get("validation.zone_resolvers", {}),
        caa_identities=r.get("validation.caa_identities", v.caa_identities),
        allowed_networks=r.get(
            "validation.allowed_networks",
            default_allowed_networks(server.listen_host, server.external_url),
        ),
        timeout=r.get("validation.timeout", v.timeout),
        max_in_flight=r.get("validation.max_in_flight", v.max_in_flight),
        max_in_flight_per_account=r.get(
            "validation.max_in_flight_per_account", v.max_in_flight_per_account
        ),
    )
    profiles = read_profiles(policy_tables["profiles"],
                             default_validity=policy.default_validity,
                             max_validity=policy.max_validity,
                             allowed_domains=policy.allowed_domains)
    acme = AcmeConfig(
        website=r.get("acme.website", None),
        terms_of_service=r.get("acme.terms_of_service", None),
        eab_required=r.get("acme.eab_required", False),
        default_profile=r.get("acme.default_profile", DEFAULT_PROFILE),
    )
    default = profiles.get(acme.default_profile)
    if default is None or default.retired:
        raise ConfigError(f"acme.default_profile: {acme.default_profile!r} is not a profile "
                          f"in use (profiles: {', '.join(sorted(profiles))})")
    revocation = read_revocation(r.get, server)
    return Config(server, storage, ca, policy, validation, acme, source,
                  profiles=profiles, limits=read_limits(policy_tables["limits"]),
                  retention=read_retention(policy_tables["retention"]),
                  revocation=revocation, admin=read_admin(r.get, server, revocation))

