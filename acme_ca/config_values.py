"""Checking and converting configuration values: one function per kind of value.

Each converter takes the reader (for resolving relative paths) and the raw TOML value,
and returns the typed value or raises ValueError saying what is wrong; `config` adds
the key's name to the message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from acme_ca.cpu_quota import available_cores
from acme_ca.pkcs11_uri import Pkcs11Uri, is_pkcs11_uri

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class PathResolver(Protocol):
    def path(self, value: Any) -> Path:
        """A path from the configuration, made absolute against the file's directory."""


# The resolver of a value that names no file (a [profiles.NAME] value, a command line's
# domains): the converters below that take no path ignore it.
NO_FILES = cast(PathResolver, None)


_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '24h', '7d' or a sequence such as '1h30m' -> timedelta (> 0)."""
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration (a number with s, m, h or d, e.g. '24h')")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # no ValueError: past timedelta.max (about 2.7 million years)
        raise ValueError(f"{text!r} is too long a duration") from None


def expand_user(text: str) -> Path:
    """``text`` as a path, a leading ``~`` or ``~user`` expanded to that home directory."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # no such user, or no home directory: pathlib says RuntimeError
        raise ValueError(f"{text!r}: cannot expand {text.split('/', 1)[0]!r}") from None


def format_duration(delta: timedelta) -> str:
    """The shortest exact text parse_duration reads back: 86400s -> '1d'."""
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def parse_host_port(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """'127.0.0.1:53', '[::1]:8555', 'ca.example:443' -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValueError(f"{text!r} is not host:port")
        host, port_text = text, str(default_port)
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r} is not host:port with a port from 1 to 65535")
    return host, int(port_text)


def string(_: PathResolver, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a non-empty string")
    return value.strip()


def boolean(_: PathResolver, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


LOG_FORMATS = ("text", "json")


def log_format(_: PathResolver, value: Any) -> str:
    if value not in LOG_FORMATS:
        raise ValueError(f"{value!r} is not a log format")
    return str(value)


def port(_: PathResolver, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"{value!r} is not a port")
    return value


def duration(_: PathResolver, value: Any) -> timedelta:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return parse_duration(value)


def listen(reader: PathResolver, value: Any) -> str:
    text = string(reader, value)
    parse_host_port(text)
    return text


def hostname(reader: PathResolver, value: Any) -> str:
    text = string(reader, value).lower().rstrip(".")
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|[0-9a-f:.]+", text):
        raise ValueError(f"{value!r} is not a host name")
    return text


def external_url(reader: PathResolver, value: Any) -> str:
    text = string(reader, value)
    if not re.fullmatch(r"https://[^/\s?#]+(/[^\s?#]*)?", text):
        raise ValueError(f"{value!r} is not an https:// URL")
    parts = urlsplit(text)
    parts.port  # noqa: B018 (raises ValueError for a port that is not one)
    if not parts.hostname:
        raise ValueError(f"{value!r} names no host")
    return text.rstrip("/")


def domains(reader: PathResolver, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{value!r} is not a non-empty list of domain suffixes")
    out = []
    for item in value:
        text = string(reader, item).lower().strip(".")
        if text.startswith("*") or not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", text):
            raise ValueError(f"{item!r} is not a domain suffix such as 'bluerobin.local'")
        out.append(text)
    return tuple(out)


def at_or_under(name: str, domain: str) -> bool:
    """Is `name` the domain `domain` or a name under it (both lowercase, no trailing
    dot)? The one test of it: name constraints, [policy] and profile domains, grants,
    the CLI's."""
    return name == domain or name.endswith("." + domain)


def at_or_under_any(name: str, domains: Sequence[str]) -> bool:
    """Is `name` at or under one of the suffixes `domains`?"""
    return any(at_or_under(name, domain) for domain in domains)


def url(reader: PathResolver, value: Any) -> str:
    text = string(reader, value)
    if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", text):
        raise ValueError(f"{value!r} is not an http(s):// URL")
    return text


def http_url(reader: PathResolver, value: Any) -> str:
    """A plain http:// base URL with no path, query or fragment (relying parties fetch
    CRLs and ask OCSP over http: RFC 5280 4.2.1.13, RFC 6960 A.1; the listener serves
    /crl/..., /ca/... and /ocsp at its root, so a path would put 404s in the leaves), no
    trailing slash."""
    text = string(reader, value)
    if not re.fullmatch(r"http://[^\s/?#]+/?", text):
        raise ValueError(f"{value!r} is not an http:// URL with no path, query or fragment "
                         "(the listener serves /crl/... at its root)")
    return text.rstrip("/")


def domains_or_empty(reader: PathResolver, value: Any) -> tuple[str, ...]:
    return domains(reader, value) if value != [] else ()


def resolvers(reader: PathResolver, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{value!r} is not a list")
    for item in value:
        host, _ = parse_host_port(string(reader, item))
        ipaddress.ip_address(host)
    return tuple(value)


def hosts(reader: PathResolver, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f'{value!r} is not a table of name = "address"')
    table = {}
    for name, address in value.items():
        table[name.lower().rstrip(".")] = str(ipaddress.ip_address(string(reader, address)))
    return table


def networks(reader: PathResolver, value: Any) -> tuple[IpNetwork, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{value!r} is not a list of networks")
    return tuple(ipaddress.ip_network(string(reader, v), strict=False) for v in value)


def zone_resolvers(reader: PathResolver, value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a table of suffix = ['ip:port', ...]")
    table = {}
    for suffix, servers in value.items():
        zone = domains(reader, [suffix])[0]
        table[zone] = resolvers(reader, servers)
        if not table[zone]:
            raise ValueError(f"zone {suffix!r} has no resolver")
    return table


def positive(_: PathResolver, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a positive integer")
    return value


MAX_WORKERS = 1024  # a typo's 10**20 is refused, not forked until fork fails


def workers(_: PathResolver, value: Any) -> int:
    """A positive number of processes (at most 1024), or "auto": one per core this
    process may use (``available_cores``), 1024 at most too. A command line's "4"
    counts as 4."""
    if value == "auto":
        return min(available_cores(), MAX_WORKERS)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WORKERS:
        raise ValueError(f"{value!r} is neither a positive integer up to {MAX_WORKERS} "
                         "nor 'auto'")
    return value


def pool_size(_: PathResolver, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ValueError(f"{value!r} is not an integer from 1 to 1000")
    return value


def storage_url(reader: PathResolver, value: Any) -> str:
    """The URL is never repeated in a message: it may hold a password."""
    text = string(reader, value)
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError("the value is not a URL")
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError(f"{scheme!r} URLs are not supported")
    if scheme == "sqlite" and rest.startswith("/") and rest != "/:memory:":
        path = rest[1:]
        return f"sqlite:///{reader.path(path)}"
    return text


def path(reader: PathResolver, value: Any) -> Path:
    return reader.path(value)


def key_location(reader: PathResolver, value: Any) -> Path | Pkcs11Uri:
    """A key file's path, or a key on a PKCS#11 token named by an RFC 7512 URI."""
    if isinstance(value, str) and is_pkcs11_uri(value):
        return Pkcs11Uri.parse(value)
    return reader.path(value)


def paths(reader: PathResolver, value: Any) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{value!r} is not a list of file paths")
    return tuple(reader.path(v) for v in value)


# A blocklist line: a SHA-256 in hex, then nothing, a `#` comment, or the rest of a
# `sha256sum` line (two spaces, or " *" in binary mode, then the file name).
_BLOCKLIST_LINE = re.compile(r"([0-9a-fA-F]{64})(?:\s*(?:#.*)?|  .*| \*.*)")


def key_blocklist(reader: PathResolver, value: Any) -> tuple[Path, frozenset[bytes]]:
    """[policy] blocked_keys_file: (the path, the set of SHA-256 digests it lists).

    The file is UTF-8 text, one key a line: the SHA-256 of the key's DER
    SubjectPublicKeyInfo in hex (64 digits, either case), as Boulder's blocked-keys
    list has it and `acme-ca keys hash` prints (pki/goodkey.py also matches the other
    encodings a `sha256sum` of a key file may have hashed). A `sha256sum` output line
    ("<hex>  <file>", "<hex> *<file>") is read as its hash. Blank lines and lines or
    text after a `#` are ignored. It is read once, here, at configuration load.
    """
    file = reader.path(value)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{file} is not UTF-8 text") from None
    digests = set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        match = _BLOCKLIST_LINE.fullmatch(entry)
        if match is None:
            raise ValueError(
                f"{file} line {number}: {entry[:80]!r} is not a SHA-256 hash in hex"
            )
        digests.add(bytes.fromhex(match[1]))
    return file, frozenset(digests)
