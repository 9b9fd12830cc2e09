"""Issuance that always ends: the sweeper of orders left processing (RFC 8555 7.1.6).

Finalize reserves the serial and moves the order to PROCESSING in one transaction
(``Store.start_issuance``), signs, then stores the certificate and moves the order to
VALID in another (``finish_order``). Three things can stop it in between and leave a
client polling a processing order forever: the process dies (kill -9, power loss); the
issuance is cancelled (``issuance.InFlight`` shields it from its request and drains it
at shutdown, but gives up on one still running after ``DRAIN_LIMIT``); the database
fails the certificate's write and then the order's move to invalid too.

The sweeper ends such orders: each order processing for ``DEADLINE`` or longer (counted
from the reservation of its serial), except those whose issuance is in flight in this
process (``InFlight``),

- becomes VALID if its certificate was stored (only the order's move was lost), and
  its ``certificate.issued`` entry is appended (actor ``system``, ``completed_by:
  sweeper``): the issuance appends only once ``finish_order`` answered, so no one else
  recorded it (a ``finish_order`` that committed but whose answer was lost leaves the
  order VALID, not here: ``issuance.sign_for_order`` records that one);
- else becomes INVALID with a serverInternal problem; its serial stays RESERVED, as
  evidence that it may have been signed, and is never reused (rows are never deleted).

The deadline is a guess, not a proof that the issuance stopped: an issuance is a
signature and two commits, milliseconds, but a COMMIT waits in a thread without limit,
signing runs on the loop, a process can be paused. Hence three layers, so that a late
sweep never loses a signature. In this process the sweeper skips issuances in flight
(so an issuance stuck here keeps its order processing until this process ends; the
next one sweeps it). A sweeper in another process (``serve --workers N``, replicas)
cannot see them, so the issuance reads its order just before signing and signs nothing
if it is no longer PROCESSING; and a certificate signed for an order ended after that
read is stored all the same (ISSUED; the order stays INVALID; the client gets that
invalid order, not a 500): ``issuance.sign_for_order``.

It is one job of the cluster's background work (``background.py``): the one process
that holds the background lease sweeps, every period of that work (2 s), so no order
whose issuance is gone stays processing much past ``DEADLINE``, at the cost of one
indexed read of (usually) nothing. Why 30 s (no configuration): far beyond an
issuance's usual worst case (two 5 s ``busy_timeout`` waits for the write lock).

Two processes may still sweep at once (a lease proves nothing about a paused process,
and tests run two): every move is a compare-and-set from PROCESSING, so each order
moves exactly once and a sweeper that loses the race hears ``Conflict`` and passes on.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import timedelta

from acme_ca.authority.audit import Auditor
from acme_ca.clock import Clock
from acme_ca.domain.audit import AuditAction
from acme_ca.domain.models import CertificateRecord, Order, OrderStatus
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.errors import Conflict, NotFound
from acme_ca.store.base import Store

log = logging.getLogger(__name__)

DEADLINE = timedelta(seconds=30)  # processing for this long: the issuance is not running
BATCH = 100  # orders read at a time

UNFINISHED = AcmeProblem(
    ProblemType.SERVER_INTERNAL,
    "the server stopped or failed before the certificate was stored; create a new order",
    status=500,
)


class IssuanceSweeper:
    """Ends orders left processing (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        batch: int = BATCH,
        in_flight: Collection[str] = frozenset(),
    ) -> None:
        """``in_flight``: the ids of orders whose issuance runs in this process
        (``issuance.InFlight``), left alone whatever their age; its length bounds how
        many of them a read may return, so they never fill a batch."""
        if batch < 1:
            raise ValueError("the sweeper needs a batch of at least 1")
        self._store = store
        self._clock = clock
        self._batch = batch
        self._in_flight = in_flight
        self._auditor = Auditor(store, clock)

    async def sweep(self) -> int:
        """End every order processing for ``DEADLINE`` or longer whose issuance is not in
        flight here; how many this call moved (those another process moved first are not
        counted)."""
        moved = 0
        while True:
            started_before = self._clock.now() - DEADLINE
            limit = self._batch + len(self._in_flight)  # those skipped, and a batch
            stale = await self._store.processing_orders(started_before, limit=limit)
            ended = [await self._end(order, record) for order, record in stale
                     if order.id not in self._in_flight]
            moved += sum(ended)
            if len(stale) < limit or not any(ended):
                return moved

    async def _end(self, order: Order, record: CertificateRecord | None) -> bool:
        """Complete or fail one order with a compare-and-set; False if another won."""
        serial = record.serial if record is not None else None
        try:
            if record is not None and record.der is not None:
                await self._store.complete_order(order.id, record.serial)
                log.warning("order %s was left processing with certificate %s stored: "
                            "now valid", order.id, serial)
                await self._auditor.record(
                    AuditAction.CERTIFICATE_ISSUED, identifiers=record.names,
                    serial=record.serial,
                    details={"profile": record.profile, "order": order.id,
                             "account": record.account_id, "completed_by": "sweeper"})
            else:
                await self._store.update_order_status(
                    order.id, expected=OrderStatus.PROCESSING, status=OrderStatus.INVALID,
                    error=UNFINISHED.dumps())
                log.warning("order %s was left processing (serial %s reserved, no certificate "
                            "stored): now invalid", order.id, serial)
        except (Conflict, NotFound):
            return False  # moved meanwhile: by its finalize, or by another sweeper
        return True
