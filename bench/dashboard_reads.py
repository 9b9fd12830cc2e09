"""What the dashboard's pages cost at N revoked certificates and N accounts (SQLite;
review of issue 13 item 6): each page's time and the most rows one store read returned.

A fresh SQLite database in a temporary folder, N unexpired revoked certificates of
one issuer and N + 1 accounts (copied by SQL from one of each made through the store).

    .venv/bin/python -m bench.dashboard_reads 100000
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from acme_ca.authority.dashboard import Dashboard
from acme_ca.authority.revocation import RevocationService
from acme_ca.clock import Clock
from acme_ca.domain.models import Account, AccountStatus, CertificateRecord
from acme_ca.store import Store, open_store


class WallClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)


class RowsRead:
    """The store, with the most rows one of its reads returned since ``most`` was reset."""

    def __init__(self, store: Store) -> None:
        self._store, self.most = store, 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def read(*args: Any, **kwargs: Any) -> Any:
            result = await method(*args, **kwargs)
            if isinstance(result, list | tuple | dict):
                self.most = max(self.most, len(result))
            return result

        return read


def _copies(db: sqlite3.Connection, table: str, n: int, first: str,
            changed: dict[str, str]) -> None:
    """N copies of the row ``first`` of ``table``, the columns of ``changed`` computed
    from s.n (1..N)."""
    columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    key = columns[0]
    values = ", ".join(changed.get(c, c) for c in columns)
    db.execute(f"""WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?)
        INSERT INTO {table} ({', '.join(columns)}) SELECT {values}
        FROM s, {table} WHERE {table}.{key} = ?""", (n, first))  # noqa: S608


async def main(n: int, folder: Path) -> None:
    clock = WallClock()
    now = clock.now()
    url = f"sqlite:///{folder / 'dashboard.sqlite3'}"
    store = await open_store(url, clock=clock)
    await store.reserve_serial(CertificateRecord(
        serial="01", issuer="ab" * 32, names=("a.example",), profile="server",
        not_before=now, not_after=now + timedelta(days=60), created_at=now))
    await store.store_certificate("01", b"x")
    await store.revoke_certificate("01", 1, now)
    await store.create_account(Account(
        id="acct-0", status=AccountStatus.VALID, jwk="{}", thumbprint="t0", contact=(),
        terms_agreed=True, created_at=now))
    await store.close()
    with sqlite3.connect(folder / "dashboard.sqlite3") as db:
        _copies(db, "certificates", n, "01", {"serial": "printf('%040x', s.n + 1)"})
        _copies(db, "accounts", n, "acct-0", {"id": "'acct-' || s.n",
                                              "thumbprint": "'t' || s.n"})
    store = await open_store(url, clock=clock)
    spy = RowsRead(store)
    dashboard = Dashboard(spy, clock, RevocationService(store, clock))  # type: ignore[arg-type]
    print(f"{n} revoked certificates, {n + 1} accounts")
    for name, page in [("overview", dashboard.overview), ("revocations", dashboard.revocations),
                       ("accounts", dashboard.accounts),
                       ("account counts", dashboard.account_counts),
                       ("expiring", dashboard.expiring)]:
        spy.most = 0
        start = time.perf_counter()
        await page()
        print(f"{name:16s} {(time.perf_counter() - start) * 1000:8.1f} ms"
              f"  most rows of one read: {spy.most}")
    await store.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, Path(folder)))
