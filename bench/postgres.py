"""A fresh PostgreSQL database per run, and the backend processes that serve it.

The bench's PostgreSQL is the development one: 127.0.0.1:5432, user postgres, trust
authentication (``SERVER``). Each run gets a database with a random name, dropped
afterwards with ``WITH (FORCE)`` (a replica's pool that outlived it cannot hold it).
Its backends are found by their process title, ``postgres: [cluster: ]<user> <db>
<client> <activity>``: the CPU they spend is the database's share of an issuance,
which acme-ca on SQLite spends inside its own process.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

SERVER = "postgresql://postgres@127.0.0.1:5432"


def _asyncpg() -> Any:
    try:
        import asyncpg  # the `postgres` extra
    except ImportError:
        raise RuntimeError(
            "PostgreSQL storage needs asyncpg: pip install '.[postgres]'"
        ) from None
    return asyncpg


async def _admin(statement: str) -> None:
    connection = await _asyncpg().connect(f"{SERVER}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create a database with a random name; yield its name; drop it."""
    name = f"acme_ca_bench_{secrets.token_hex(6)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def url(database: str) -> str:
    """The ``[storage] url`` of ``database`` on the bench's PostgreSQL."""
    return f"{SERVER}/{database}"


def backends(database: str) -> list[int]:
    """Pids of the backend processes connected to ``database`` right now."""
    title = re.compile(rf"^postgres: (?:\S+: )?\S+ {re.escape(database)} ")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if title.match(cmdline):
            pids.append(int(entry.name))
    return pids
