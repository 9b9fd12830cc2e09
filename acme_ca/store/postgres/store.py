"""``PostgresStore``: the ``Store`` for replicas, assembled from one class per group
of entities (``certificates``, ``accounts``, ``orders``, ``authorizations``,
``cluster``, ``retention``, ``eab``, ``limits``, ``revocation``, ``audit``,
``operations``) over the pool and concurrency rules of ``base``.
"""

from __future__ import annotations

from collections.abc import Sequence

from acme_ca.clock import Clock, SystemClock
from acme_ca.config import DEFAULT_POOL_SIZE
from acme_ca.domain.models import Account, Authorization, CertificateRecord, Order
from acme_ca.store.migrations import check_current
from acme_ca.store.postgres.accounts import AccountMethods
from acme_ca.store.postgres.audit import AuditMethods
from acme_ca.store.postgres.authorizations import AuthorizationMethods
from acme_ca.store.postgres.base import Connection
from acme_ca.store.postgres.certificates import CertificateMethods
from acme_ca.store.postgres.cluster import ClusterMethods
from acme_ca.store.postgres.eab import EabMethods
from acme_ca.store.postgres.limits import LimitMethods
from acme_ca.store.postgres.migrate import migrate_postgres, postgres_schema_version
from acme_ca.store.postgres.operations import OperationsMethods
from acme_ca.store.postgres.orders import OrderMethods
from acme_ca.store.postgres.pool import TIMEOUT, open_pool
from acme_ca.store.postgres.retention import RetentionMethods
from acme_ca.store.postgres.revocation import RevocationMethods
from acme_ca.store.postgres.rows import (
    ACCOUNT_INSERT,
    AUTHORIZATION_INSERT,
    CERTIFICATE_INSERT,
    CHALLENGE_INSERT,
    LINK_INSERT,
    ORDER_INSERT,
    account_row,
    authorization_row,
    certificate_row,
    challenge_rows,
    link_rows,
    order_row,
)
from acme_ca.store.postgres.url import describe


class PostgresStore(ClusterMethods, AccountMethods, OrderMethods, AuthorizationMethods,
                    CertificateMethods, RetentionMethods, EabMethods, LimitMethods,
                    RevocationMethods, AuditMethods, OperationsMethods):
    """``Store`` on one PostgreSQL database, shared by any number of replicas."""

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        clock: Clock | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        timeout: float = TIMEOUT,
        migrate: bool = True,
    ) -> PostgresStore:
        """Connect to ``dsn`` (a ``postgresql://`` URL, TLS options included) with a
        pool of at most ``pool_size`` connections, and migrate the database; with
        ``migrate=False`` (a reader: ``acme-ca db stats``), refuse instead any schema
        but the newest (``migrations.check_current``), and write nothing.

        ``StoreUnavailable`` if the server cannot be reached; ``StoreError`` if it
        refuses us or its schema is newer than this code; ``ConfigError`` if the URL
        is malformed (``url.py``). ``clock`` stamps the
        migrations applied; ``timeout`` bounds every wait (``pool.py``).
        """
        applied_at = (clock or SystemClock()).now().isoformat()
        pool = await open_pool(dsn, size=pool_size, timeout=timeout)  # checks the URL
        store = cls(pool, describe(dsn), timeout)
        try:
            if migrate:
                await store._run(lambda conn: migrate_postgres(conn, applied_at))
            else:
                check_current(await store.schema_version(), "postgres", describe(dsn))
        except BaseException:
            await store.close()
            raise
        return store

    async def schema_version(self) -> int:
        return await self._run(postgres_schema_version)

    async def bulk_insert(
        self,
        *,
        accounts: Sequence[Account] = (),
        certificates: Sequence[CertificateRecord] = (),
        authorizations: Sequence[Authorization] = (),
        orders: Sequence[Order] = (),
    ) -> None:
        """Many rows in one transaction: for seeding a database with a long history
        (benchmarks) and for imports. Not part of ``Store``: it skips the per-call
        checks of the Store methods, so the caller hands in consistent values (the
        schema's constraints still hold). Authorizations bring their challenges; orders
        their links to their authorizations."""
        batches = (
            (ACCOUNT_INSERT, [account_row(a) for a in accounts]),
            (CERTIFICATE_INSERT, [certificate_row(c) for c in certificates]),
            (AUTHORIZATION_INSERT, [authorization_row(a) for a in authorizations]),
            (CHALLENGE_INSERT, challenge_rows(authorizations)),
            (ORDER_INSERT, [order_row(o) for o in orders]),
            (LINK_INSERT, [link for o in orders for link in link_rows(o)]),
        )

        async def insert(conn: Connection) -> None:
            for sql, rows in batches:
                if rows:
                    await conn.executemany(sql, rows)

        await self._transaction(insert)
