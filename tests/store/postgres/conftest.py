"""Fixtures of the PostgreSQL backend's own tests: a database per test (``tests/store/pg.py``).

Without asyncpg this folder is skipped (it fails under CI): its modules import it."""

from tests.store.pg import pg_store, pg_url, require_asyncpg

require_asyncpg()

__all__ = ["pg_store", "pg_url"]
