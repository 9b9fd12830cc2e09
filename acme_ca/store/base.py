"""The storage contract: one async Protocol for everything the CA persists.

The contract every backend keeps (``tests/store/contract/`` checks it on each):

- Records go in and come out as immutable values (``acme_ca.domain.models``); a
  backend keeps its row mapping private and never hands out shared mutable state.
- Datetimes are timezone-aware and come back in UTC; a naive datetime is a
  programming error and raises ``ValueError``.
- Every state change is a compare-and-set: the update names the state it expects
  (``WHERE status = 'reserved'``) and fails with ``Conflict`` when the row is in any
  other state. Several processes, or several replicas sharing one database, can
  therefore run the same code; exactly one of two racing writers wins and the
  other gets ``Conflict``, which is a normal outcome, not a crash. Which state comes
  next is decided by ``acme_ca.domain.states``, never by SQL.
- A write either happens completely or not at all; a transaction that reads rows to
  decide a change locks them first (or runs alone), so two transactions never decide
  on what the other is changing.
- ``NotFound`` means the row does not exist; ``Conflict`` means it exists but is
  not in the state the operation needs, or it already exists; ``StoreUnavailable``
  means the database cannot be reached now (retry later); any other failure of the
  database is a plain ``StoreError``. None of them carries anything HTTP.

The interface is split as Boulder splits its storage authority: ``ReadStore``
(``reads.py``) answers, ``WriteStore`` (``writes.py``) changes, and ``NonceStore``
and ``LeaseStore`` (``cluster.py``) hold what replicas share besides the data,
``EabStore`` and ``LimitStore`` (``policy.py``) who may get what, and
``RetentionStore`` (``retention.py``) what keeps the database bounded, and
``RevocationStore`` (``revocation.py``) CRLs and the marks for early renewal,
``AuditStore`` (``audit.py``) the hash-chained audit log, and ``OperationsStore``
(``operations.py``) the lists and counts operators look at.
Code that only reads depends on ``ReadStore``. Preconditions every backend checks,
and the explanation of a refused compare-and-set, are in ``guards.py``.
"""

from __future__ import annotations

from typing import Protocol

from acme_ca.store.audit import AuditStore
from acme_ca.store.cluster import LeaseStore, NonceStore
from acme_ca.store.operations import OperationsStore
from acme_ca.store.policy import EabStore, LimitStore
from acme_ca.store.reads import ReadStore
from acme_ca.store.retention import RetentionStore
from acme_ca.store.revocation import RevocationStore
from acme_ca.store.writes import WriteStore


class Store(ReadStore, WriteStore, NonceStore, LeaseStore, EabStore, LimitStore,
            RetentionStore, RevocationStore, AuditStore, OperationsStore, Protocol):
    """Everything the CA persists, behind one async interface."""

    async def close(self) -> None:
        """Wait for the operation in progress, then release the database.

        Any later call raises ``StoreError``. Closing twice is harmless.
        """

    async def schema_version(self) -> int:
        """The number of the newest migration applied to the database."""
