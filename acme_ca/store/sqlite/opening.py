"""Opening a SQLite store: its three connections, each set up for what it does.

- the writer: ``synchronous = FULL`` (a COMMIT survives power loss), and every write
  goes through it, a batch at a time (``commits``); it also migrates the schema
  and is the only connection that checkpoints the WAL;
- the reader: ``query_only``; in WAL mode it reads the last committed state without
  waiting for the writer, so reads never queue behind an fsync;
- the nonces: a separate database file beside the main one (``<name>-nonces.db``),
  ``synchronous = OFF``. Nonces need not survive a crash (a client whose nonce is lost
  gets badNonce and retries, RFC 8555 6.5), and in a file of their own their writes
  never wait for the main file's write lock, which a COMMIT holds through its fsync.
  Every process sharing the main file shares this one too, so a nonce issued by one
  worker can be redeemed at another. If the file is damaged (a power loss while
  unsynced; checked with ``PRAGMA quick_check``), it is started afresh, once.

  Restarting a process forgets no nonce: what a process committed is in the kernel's
  page cache even if it is killed. A crash of the machine may lose a consumption that
  was never written to the disk, and so let a used nonce be accepted again; so the file
  remembers the boot it was written in (``/proc/sys/kernel/random/boot_id``) and
  forgets every nonce when opened in another one. Where the boot cannot be told (no
  such file), every opening forgets them: at worst a client gets badNonce and retries.

The reader and the nonce connection run their statements on the event loop with
busy_timeout 0: whatever lock another process holds is tried for again between the
loop's other tasks (``Connection.without_sleeping``), never by putting the loop to sleep.

For ``:memory:`` (tests) writer and reader are one connection, and the nonces another
private in-memory database.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from acme_ca.errors import StoreError
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.migrate import migrate_sqlite, sqlite_immediate

log = logging.getLogger(__name__)

MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 5000
# RETURNING (3.35) and row values; the JSON functions are probed at open.
MIN_SQLITE = (3, 35, 0)

NONCE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS nonces ("
    " nonce TEXT NOT NULL PRIMARY KEY, expires TEXT NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS nonces_by_expiry ON nonces (expires)",
    # One row: the boot the nonces were written in (see the module docstring).
    "CREATE TABLE IF NOT EXISTS boot (id TEXT NOT NULL)",
)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Connections:
    writer: Connection
    reader: Connection
    nonces: Connection

    async def close(self) -> None:
        """Close each distinct connection once, the writer last."""
        for conn in dict.fromkeys((self.nonces, self.reader, self.writer)):
            await conn.close()


def nonce_path(target: str) -> str:
    """``/var/lib/acme-ca/acme-ca.db`` -> ``/var/lib/acme-ca/acme-ca-nonces.db``."""
    path = Path(target)
    return str(path.with_name(f"{path.stem}-nonces{path.suffix}"))


def read_boot_id(path: Path = BOOT_ID) -> str | None:
    """This boot's id (Linux: a random UUID drawn at each boot); None if unknown."""
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


async def open_connections(target: str, applied_at: str, boot: str | None) -> Connections:
    """Open, configure and migrate the database at ``target`` (created 0600 if missing);
    ``boot``: this boot's id (``read_boot_id``), for the nonce file."""
    _check_sqlite_version()
    memory = target == MEMORY
    if not memory:
        _create_private_file(target)
    opened: list[Connection] = []
    try:
        writer = await Connection.connect(target, durable=not memory)
        opened.append(writer)
        await _configure(writer, wal=not memory)
        await _check_json(writer)
        await migrate_sqlite(writer, applied_at)
        # The writer sleeps on no lock from here on: commits.py tries BEGIN again.
        await writer.execute("PRAGMA busy_timeout = 0")
        if memory:
            reader = writer
        else:
            reader = await Connection.connect(target, durable=False)
            opened.append(reader)
            await reader.execute("PRAGMA query_only = 1")
            await reader.execute("PRAGMA busy_timeout = 0")  # tried again: see _read
        nonces = await _open_nonces(MEMORY if memory else nonce_path(target), boot)
    except BaseException as exc:
        for conn in reversed(opened):
            await conn.close()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{target}: {exc}") from exc
        raise
    return Connections(writer, reader, nonces)


async def _open_nonces(path: str, boot: str | None) -> Connection:
    try:
        return await _try_open_nonces(path, boot)
    except sqlite3.DatabaseError as exc:
        if path == MEMORY or not _is_damage(exc):
            raise
    return await _start_nonces_afresh(path, boot)


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """Not a database, or a damaged one; an OperationalError (busy, no space, ...) is
    something else, for which the file must be left alone."""
    return not isinstance(exc, sqlite3.OperationalError)


async def _start_nonces_afresh(path: str, boot: str | None) -> Connection:
    """Replace a damaged nonce file with an empty one, once: processes that open it at
    the same moment (``serve --workers N``) take turns on an exclusive lock of
    ``<file>.lock`` (a file of its own: a lock on the database file itself would mix
    with SQLite's), and each looks again before deleting anything."""
    loop = asyncio.get_running_loop()
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await loop.run_in_executor(None, fcntl.flock, lock, fcntl.LOCK_EX)
        try:
            return await _try_open_nonces(path, boot)  # another process did it meanwhile
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            reason = str(exc)
        log.warning("%s is damaged (%s); starting it afresh: nonces issued before are void",
                    path, reason)
        for suffix in ("-wal", "-shm", ""):
            Path(path + suffix).unlink(missing_ok=True)
        return await _try_open_nonces(path, boot)
    finally:
        os.close(lock)  # releases the lock


async def _try_open_nonces(path: str, boot: str | None) -> Connection:
    if path != MEMORY:
        _create_private_file(path)
    conn = await Connection.connect(path, durable=False)
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        if path != MEMORY:
            await _enable_wal(conn)
        await conn.execute("PRAGMA synchronous = OFF")
        for statement in NONCE_SCHEMA:
            await conn.execute(statement)
        found = [row[0] for row in await conn.execute_fetchall("PRAGMA quick_check")]
        if found != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(map(str, found[:3])))
        await _forget_another_boot(conn, boot)
        # From here on the event loop never sleeps on this file's lock (nonces.py).
        await conn.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _forget_another_boot(conn: Connection, boot: str | None) -> None:
    """Forget every nonce unless the file was written in this boot, and say it is now:
    in one transaction, so that processes opening it together forget once, before any
    of them issues a nonce."""
    async with sqlite_immediate(conn):
        rows = await conn.execute_fetchall("SELECT id FROM boot")
        if boot is None or [row[0] for row in rows] != [boot]:
            await conn.execute("DELETE FROM nonces")
            await conn.execute("DELETE FROM boot")
            if boot is not None:
                await conn.execute("INSERT INTO boot (id) VALUES (?)", (boot,))


async def _configure(conn: Connection, *, wal: bool) -> None:
    """Per-connection settings; busy_timeout first, so the others wait for locks too."""
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
    if wal:
        await _enable_wal(conn)
    await conn.execute("PRAGMA synchronous = FULL")  # a COMMIT survives power loss
    await conn.execute("PRAGMA foreign_keys = ON")


def _check_sqlite_version() -> None:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        needed = ".".join(map(str, MIN_SQLITE))
        raise StoreError(
            f"acme-ca needs SQLite {needed} or newer; Python here uses {sqlite3.sqlite_version}"
        )


async def _check_json(conn: Connection) -> None:
    try:
        await conn.execute_fetchall("SELECT json_array(1)")
    except sqlite3.OperationalError as exc:
        raise StoreError(
            f"this SQLite {sqlite3.sqlite_version} lacks the JSON functions acme-ca needs"
        ) from exc


async def _enable_wal(conn: Connection) -> None:
    """Switch the file to WAL mode (persistent: a no-op once the file is in it).

    The switch needs an exclusive lock, and when two connections try it on a
    fresh file at once SQLite answers SQLITE_BUSY immediately rather than risk a
    deadlock, ignoring busy_timeout; so retry for as long as busy_timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
            break
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or loop.time() >= deadline:
                raise
            await asyncio.sleep(0.01)
    mode = str(rows[0][0]).lower()
    if mode != "wal":
        raise StoreError(
            f"SQLite refused WAL mode (journal_mode is {mode!r}); "
            "put the database on a local filesystem"
        )


def _create_private_file(path: str) -> None:
    """Create a missing database file readable by its owner only.

    SQLite gives its -wal and -shm files the mode of the database file, so they
    are private too. An existing file is left as it is.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the database: {exc.strerror}") from exc
    os.close(fd)
