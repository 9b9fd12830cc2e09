"""The SQLite backend of ``Store``: the embedded default, for one machine.

Its engine (``connection``, ``commits``, ``opening``) is a thin layer over the
standard library's sqlite3; its concurrency contract is written at the top of
``base.py``. ``store.py`` assembles ``SqliteStore`` from one class per group of
entities.
"""

from acme_ca.store.sqlite.opening import MEMORY
from acme_ca.store.sqlite.store import SqliteStore

__all__ = ["MEMORY", "SqliteStore"]
