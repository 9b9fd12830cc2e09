"""The PostgreSQL backend of ``Store``, on asyncpg (the ``postgres`` extra): for
several replicas sharing one database.

``store.py`` assembles ``PostgresStore`` from one class per group of entities; the
concurrency rules they share are written at the top of ``base.py``, the pool, its
timeouts, TLS and what failures become in ``pool.py``, what is checked of the URL
before asyncpg reads it in ``url.py``, the migrations runner in ``migrate.py``.
"""

from acme_ca.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
