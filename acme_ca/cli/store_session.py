"""One short store session for a command that reads or changes a few rows (`eab`,
`certs`): open the store [storage] url names, run one call, close it. A SQLite file
that does not exist is refused, not created: a mistyped --data-dir or --config would
otherwise answer from an empty database ("No certificates.") and leave it behind;
`acme-ca serve` (or `sign-csr`) creates the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from acme_ca.config import Config
from acme_ca.domain.models import Account, CertificateRecord, CertificateStatus, Order
from acme_ca.errors import ConfigError
from acme_ca.store import open_store, sqlite_file
from acme_ca.store.base import Store

T = TypeVar("T")
R = TypeVar("R", Account, Order)  # a row listed newest first
PAGE = 500  # records read per query


def with_store(config: Config, call: Callable[[Store], Awaitable[T]]) -> T:
    """``call(store)``'s result; its NotFound or Conflict reach `main`, which prints them
    as one line, as every AcmeCaError. ``ConfigError`` for a SQLite file that does not
    exist, before anything is created."""
    path = sqlite_file(config.storage.url)
    if path is not None and not path.exists():
        raise ConfigError(f"no database at {path}; is --data-dir/--config right?")

    async def session() -> T:
        store = await open_store(config.storage.url, pool_size=config.storage.pool_size)
        try:
            return await call(store)
        finally:
            await store.close()

    return asyncio.run(session())


async def pages(store: Store, *, status: CertificateStatus | None = None,
                expiring: tuple[datetime, datetime] | None = None
                ) -> AsyncIterator[CertificateRecord]:
    """Every certificate record ``list_certificates`` selects, oldest first, page by
    page (keyset: the last serial of one page starts the next)."""
    filters = {} if expiring is None else {"expiring": expiring}
    after: str | None = None
    while True:
        page = await store.list_certificates(status=status, limit=PAGE, after_serial=after,
                                             **filters)
        for record in page:
            yield record
        if len(page) < PAGE:
            return
        after = page[-1].serial


async def newest_first(read: Callable[[datetime | None, str | None, int], Awaitable[list[R]]],
                       limit: int | None = None) -> list[R]:
    """Up to ``limit`` rows (None: all) of a listing read newest first a page at a time:
    ``read(before, before_id, PAGE)`` (``list_accounts``, ``list_orders``), each page
    after the last row of the one before (its ``created_at`` and ``id``: keyset)."""
    found: list[R] = []
    before: tuple[datetime, str] | None = None
    while limit is None or len(found) < limit:
        page = await read(*(before or (None, None)), PAGE)
        found.extend(page)
        if len(page) < PAGE:
            break
        before = (page[-1].created_at, page[-1].id)
    return found[:limit]
