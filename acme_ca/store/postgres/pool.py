"""Opening the connection pool of a PostgreSQL store, and what its failures become.

One asyncpg pool per store, ``pool_size`` connections at most (``[storage] pool_size``),
one opened at start and the others as load needs them. A connection is never given
back broken: asyncpg closes one whose server went away, and the pool opens a new
one at the next acquire, so a replica reconnects by itself after a restart or a
failover of the database, or a ``pg_terminate_backend``.

Nothing waits forever: opening a connection, waiting for a free one and every
statement each give up after ``timeout`` seconds (``TIMEOUT`` unless a test says
otherwise; asyncpg's ``timeout`` and ``command_timeout``: a statement cut short is
cancelled on the server too). Each connection also sets, on the server:

- ``lock_timeout``, half of ``timeout``: a statement waiting for a row another
  session holds fails on the server (``StoreUnavailable``) before the client gives
  up on it, and leaves its connection usable;
- ``idle_in_transaction_session_timeout``, three times ``timeout``: a replica frozen
  inside a transaction (SIGSTOP, a paused VM) loses its session, and the server
  releases its row locks, instead of holding them for as long as the freeze lasts.
  No transaction of this backend waits that long between two statements.

TLS to the database is asyncpg's, set in the URL as libpq has it: ``sslmode``
(``verify-full`` checks the server's certificate and name), ``sslrootcert`` (the
CA certificate to check it with), ``sslcert``/``sslkey`` for a client certificate.

What a failure becomes (``store_error``), for every caller of the store:

- the server cannot be reached (a Unix socket gone counts: its server stopped), went
  away, is starting or shutting down, has no connection slot left, or a timeout
  above expired: ``StoreUnavailable`` (retry later; a write may or may not have
  happened);
- a unique or primary key violation: ``Conflict`` (the row already exists);
- anything else PostgreSQL or asyncpg refuses (a wrong password, a database that
  does not exist, an untrusted server certificate, a TLS file that is not one, a
  statement asyncpg cannot send as written): ``StoreError``;
- a URL asyncpg cannot read: ``ConfigError`` (``url.py``).

A message names the server as ``host:port/database`` and never repeats the URL,
which may hold a password.
"""

from __future__ import annotations

import ssl

import asyncpg

from acme_ca.errors import Conflict, StoreError, StoreUnavailable
from acme_ca.store.postgres.url import check_files, check_url, describe, unreadable

TIMEOUT = 10.0  # seconds: to connect, to wait for a free connection, for one statement

# The server is away or cannot serve now: SQLSTATE classes 08 (connection), 53
# (insufficient resources: no connection slot left), 57 (operator intervention:
# shutting down, starting up, a statement cancelled), a lock or an idle transaction
# timed out, the network's own errors (refused, reset, a Unix socket gone, a timeout:
# TimeoutError is an OSError), and a connection that is ``broken``.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.LockNotAvailableError,  # lock_timeout
    asyncpg.IdleInTransactionSessionTimeoutError,  # this session was frozen too long
    asyncpg.exceptions.TargetServerAttributeNotMatched,  # a failover in progress
    OSError,
)
# The connection ended inside TLS: the network's doing (or a server going away), not
# the configuration's.
_TLS_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
# The connection is gone: the server closed it (a restart, a failover,
# pg_terminate_backend, idle_in_transaction_session_timeout) or the network dropped it.
_GONE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.IdleInTransactionSessionTimeoutError,
    asyncpg.exceptions.ProtocolError,  # a reply asyncpg cannot read: it drops the link
    ConnectionError,
)


def _settings(timeout: float) -> dict[str, str]:
    """The server settings of each connection (the module docstring). Each speaks
    UTC, so that timestamps never depend on the server's zone."""
    return {"application_name": "acme-ca", "timezone": "UTC",
            "lock_timeout": milliseconds(timeout / 2),
            "idle_in_transaction_session_timeout": milliseconds(timeout * 3)}


def milliseconds(seconds: float) -> str:
    """A duration setting's value; at least 1 ms, since 0 would mean "no limit"."""
    return f"{max(1, round(seconds * 1000))}ms"


async def open_pool(dsn: str, *, size: int, timeout: float) -> asyncpg.Pool:
    """A pool of at most ``size`` connections to ``dsn``, one of them open already.

    ``StoreUnavailable`` if the server cannot be reached, ``StoreError`` if it refuses
    us (see ``store_error``), ``ConfigError`` for a URL asyncpg cannot read;
    ``ValueError`` for a size below 1.
    """
    if size < 1:
        raise ValueError(f"pool_size must be at least 1, not {size}")
    check_url(dsn)
    target = describe(dsn)
    check_files(dsn, target)
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            timeout=timeout,
            command_timeout=timeout,
            server_settings=_settings(timeout),
        )
    except Exception as exc:
        mapped = store_error(exc, target, timeout)
        if mapped is exc:  # not the database's: asyncpg could not read the URL
            raise unreadable(exc) from None
        raise mapped from None  # the cause may quote the URL
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
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, _TLS_CUT):
        return StoreError(f"{target}: TLS: {_one_line(exc)}; check sslmode, sslrootcert, "
                          "sslcert and sslkey")
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return StoreError(f"{target}: {_one_line(exc)}")
    if isinstance(exc, PermissionError):
        return StoreError(f"{target}: {exc.strerror} (the Unix socket, or its directory)")
    if isinstance(exc, _UNAVAILABLE) or broken(exc):
        return StoreUnavailable(f"{target} is unavailable: {_reason(exc, timeout)}")
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"{target}: {_one_line(exc)}")
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return StoreError(f"{target}: {type(exc).__name__}: {_one_line(exc)}")  # a bug
    return exc


def unsent(exc: BaseException) -> bool:
    """asyncpg refused the statement before sending anything: its connection was
    closed already ("connection is closed"), or left in a protocol state no statement
    can start from after its server went away while it sat idle ("cannot switch to
    state": MagicStack/asyncpg#1069). Nothing reached the server, or at least no
    COMMIT did. No type of asyncpg's says so, only these words: if asyncpg rewords
    them this answers False, the safe side (a write is then not tried again)."""
    if type(exc) is asyncpg.InterfaceError:
        return str(exc).endswith("connection is closed")
    if type(exc) is asyncpg.InternalClientError:
        return str(exc).startswith("cannot switch to state")
    return False


def broken(exc: BaseException) -> bool:
    """The connection is gone or out of step with its server: it must be dropped, and
    a read may be tried again on another. Not a programming error asyncpg reports as
    an ``InterfaceError`` (a wrong number of arguments): that connection is fine."""
    return isinstance(exc, _GONE) or unsent(exc)


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, FileNotFoundError):
        return "no server listens on its Unix socket"
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return "a row it needs was locked by another session for too long"
    return _one_line(exc) or type(exc).__name__


def _one_line(exc: BaseException) -> str:
    """asyncpg's message, its HINT or DETAIL lines joined to it."""
    return " ".join(str(exc).split())
