"""Fixtures of the PostgreSQL backend's own tests: a database per test (``tests/store/pg.py``)."""

from tests.store.pg import pg_store, pg_url

__all__ = ["pg_store", "pg_url"]
