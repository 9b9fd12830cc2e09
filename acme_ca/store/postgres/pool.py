"""Opening the connection pool of a PostgreSQL store, and what its failures become.

One asyncpg pool per store, ``pool_size`` connections at most (``[storage] pool_size``),
one opened at start and the others as load needs them. A connection is never given
back broken: asyncpg closes one whose server went away, and the pool opens a new
one at the next acquire, so a replica reconnects by itself after a restart or a
failover of the database, or a ``pg_terminate_backend``.

Nothing waits forever: opening a connection, waiting for a free one and every
statement each give up after ``timeout`` seconds (``TIMEOUT`` unless a test says
otherwise; asyncpg's ``timeout`` and ``command_timeout``: a statement cut short is
cancelled on the server too).

TLS to the database is asyncpg's, set in the URL as libpq has it: ``sslmode``
(``verify-full`` checks the server's certificate and name), ``sslrootcert`` (the
CA certificate to check it with), ``sslcert``/``sslkey`` for a client certificate.

What a failure becomes (``store_error``), for every caller of the store:

- the server cannot be reached, went away, is starting or shutting down, has no
  connection slot left, or a timeout above expired: ``StoreUnavailable`` (retry
  later; a write may or may not have happened);
- a unique or primary key violation: ``Conflict`` (the row already exists);
- anything else PostgreSQL or asyncpg refuses (a wrong password, a database that
  does not exist, an untrusted server certificate): ``StoreError``.

A message names the server as ``host:port/database`` and never repeats the URL,
which may hold a password.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import asyncpg

from acme_ca.errors import Conflict, StoreError, StoreUnavailable

TIMEOUT = 10.0  # seconds: to connect, to wait for a free connection, for one statement

# Each connection speaks UTC, so that timestamps never depend on the server's zone.
_SETTINGS = {"application_name": "acme-ca", "timezone": "UTC"}

# The server is away or cannot serve now: SQLSTATE classes 08 (connection), 53
# (insufficient resources: no connection slot left), 57 (operator intervention:
# shutting down, starting up, a statement cancelled), a connection asyncpg closed
# or lost track of, and the network's own errors (refused, reset, a timeout:
# TimeoutError is an OSError).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a connection out of step after its server left
    OSError,
)


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


async def open_pool(dsn: str, *, size: int, timeout: float) -> asyncpg.Pool:
    """A pool of at most ``size`` connections to ``dsn``, one of them open already.

    ``StoreUnavailable`` if the server cannot be reached, ``StoreError`` if it refuses
    us (see ``store_error``); ``ValueError`` for a size below 1.
    """
    if size < 1:
        raise ValueError(f"pool_size must be at least 1, not {size}")
    target = describe(dsn)
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            timeout=timeout,
            command_timeout=timeout,
            server_settings=_SETTINGS,
        )
    except Exception as exc:
        raise store_error(exc, target, timeout) from None  # the cause may quote the URL
    if pool is None:  # create_pool's typing allows it; an awaited pool is never None
        raise StoreError(f"{target}: the connection pool did not open")
    return pool


def store_error(exc: Exception, target: str, timeout: float = TIMEOUT) -> Exception:
    """What ``exc``, raised by asyncpg or the network while talking to ``target``,
    becomes for the store's callers (the module docstring); an exception that is not
    the database's (a ``ValueError`` from our own checks, a ``StoreError`` raised on
    purpose) is returned unchanged."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(f"the row already exists ({exc.constraint_name})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return StoreError(f"{target}: the server's TLS certificate is not trusted "
                          f"({exc.verify_message}); check sslrootcert and the host name")
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return StoreError(f"{target}: {_one_line(exc)}")
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        named = exc.filename or "a TLS file the URL names (sslrootcert, sslcert, sslkey)"
        return StoreError(f"{target}: cannot read {named}: {exc.strerror}")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"{target} is unavailable: {_reason(exc, timeout)}")
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"{target}: {_one_line(exc)}")
    return exc


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return _one_line(exc) or type(exc).__name__


def _one_line(exc: BaseException) -> str:
    """asyncpg's message, its HINT or DETAIL lines joined to it."""
    return " ".join(str(exc).split())
