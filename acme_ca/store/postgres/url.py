"""The storage URL of a PostgreSQL store: checked before asyncpg reads it, and the
server it names described without its user or password.

A user name or password holding a character that URLs reserve must be percent-encoded
(``/`` as ``%2F``, ``@`` as ``%40``, ``?`` as ``%3F``, ``#`` as ``%23``...). Written
raw, it moves where the URL's parts begin: in ``postgresql://acme:S3cr3t/x@db/acme``
the host is ``acme``, the port ``S3cr3t`` and the database ``x@db/acme``, and
asyncpg's own message would quote the piece it cannot read, part of the password.
``check_url`` refuses such a URL first, with ``ConfigError`` messages that quote
nothing from it; ``check_files`` reads the TLS files the URL names, so that a file
missing is told apart from a server whose Unix socket is gone (both are
``FileNotFoundError`` inside asyncpg).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

from acme_ca.errors import ConfigError, StoreError

_ENCODE = ("percent-encode any of / @ ? # [ ] in the user name or password "
           "(%2F %40 %3F %23 %5B %5D)")
_IPV6 = re.compile(r"\[[^\]]+\](?::(?P<port>.*))?")
_TLS_FILES = ("sslrootcert", "sslcert", "sslkey", "sslcrl")


def check_url(dsn: str) -> None:
    """``ConfigError`` if ``dsn`` is not a URL asyncpg reads as its author meant: a
    ``#`` part, a ``[`` or ``]`` out of place, an ``@`` after the host (a raw ``/``
    or ``@`` in the password), an empty host in a list, a port that is not a number
    from 1 to 65535. The message never repeats any part of the URL."""
    if "#" in dsn:
        raise _malformed("a '#' part")
    try:
        parts = urlsplit(dsn)
    except ValueError:
        raise _malformed("a '[' or ']' out of place (an IPv6 host is written [::1]:5432)"
                         ) from None
    userinfo, at, hosts = parts.netloc.partition("@")  # as asyncpg splits it
    if not at:
        hosts = userinfo
    if "@" in hosts or (not at and "@" in parts.path):
        raise _malformed("an '@' after the host")
    for host in hosts.split(",") if hosts else ():
        _check_host(host)


def _check_host(host: str) -> None:
    if not host:
        raise _malformed("an empty host in its list of hosts")
    if host.startswith("["):
        ipv6 = _IPV6.fullmatch(host)
        if ipv6 is None:
            raise _malformed("an IPv6 host that is not [address] or [address]:port")
        port = ipv6["port"] or ""
    else:
        port = host.partition(":")[2]
    port = unquote(port)
    if port and not (re.fullmatch(r"[0-9]{1,5}", port) and 1 <= int(port) <= 65535):
        raise _malformed("a port that is not a number from 1 to 65535")


def _malformed(what: str) -> ConfigError:
    return ConfigError(f"storage.url is not a valid PostgreSQL URL: {what}; {_ENCODE}")


def unreadable(exc: Exception) -> ConfigError:
    """What an exception of asyncpg's reading of the URL (not a database error)
    becomes: its message may quote the URL, so only its type is named."""
    return ConfigError(f"storage.url is not a PostgreSQL URL asyncpg can read "
                       f"({type(exc).__name__}; its message is not shown, it may quote "
                       f"the password); {_ENCODE}")


def check_files(dsn: str, target: str) -> None:
    """``StoreError`` if a TLS file the URL names (``sslrootcert``, ``sslcert``,
    ``sslkey``, ``sslcrl``) cannot be read; the message names the file."""
    query = parse_qs(urlsplit(dsn).query)
    if query.get("sslmode", [""])[-1] == "disable":
        return  # asyncpg reads none of them
    for key in _TLS_FILES:
        if not query.get(key):
            continue
        path = query[key][-1]  # as asyncpg: the last one given
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise StoreError(f"{target}: cannot read {key} {path}: {exc.strerror}") from None


def describe(dsn: str) -> str:
    """``PostgreSQL at host:port/database``: the server a URL names, without its user
    or password; the words ``the PostgreSQL database`` if the URL does not parse."""
    try:
        parts = urlsplit(dsn)
        where = parts.hostname or "localhost"
        if parts.port is not None:
            where += f":{parts.port}"
    except ValueError:
        return "the PostgreSQL database"
    database = parts.path.lstrip("/")
    return f"PostgreSQL at {where}/{database}" if database else f"PostgreSQL at {where}"
