"""One short store session for a command that reads or changes a few rows (`eab`,
`certs`): open the store [storage] url names, run one call, close it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from acme_ca.config import Config
from acme_ca.store import open_store
from acme_ca.store.base import Store

T = TypeVar("T")


def with_store(config: Config, call: Callable[[Store], Awaitable[T]]) -> T:
    """``call(store)``'s result; its NotFound or Conflict reach `main`, which prints them
    as one line, as every AcmeCaError."""

    async def session() -> T:
        store = await open_store(config.storage.url, pool_size=config.storage.pool_size)
        try:
            return await call(store)
        finally:
            await store.close()

    return asyncio.run(session())
