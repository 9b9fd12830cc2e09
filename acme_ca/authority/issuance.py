"""Issuing a certificate: decide its validity, store the serial, sign, store the certificate.

The serial is written before signing (Boulder's ISSUANCE-CYCLE), so the store always
knows every serial the intermediate has signed: a crash leaves at worst a reserved
serial with no certificate. For an order the reservation shares its transaction with
the order's move to PROCESSING, and the certificate with the move to VALID (stored
even if the order was ended meanwhile: every certificate signed is on record); an
issuance for an order always ends (``InFlight``, ``sign_for_order``, and for what they
cannot cover, a dead process or a stuck one, ``authority/sweeper.py``).

The signature itself runs in the signing pool (``pki/signer.off_loop``): a slow key
(RSA-4096, a token's round trip) never stalls the event loop's other requests.

Every certificate stored as signed is recorded in the audit log (``audited``): for an
order, by its account; by ``sign-csr``, the operator; the server's own TLS and OCSP
responder certificates, the system.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca import metrics
from acme_ca.authority.audit import Auditor
from acme_ca.authority.profiles import key_type
from acme_ca.clock import SystemClock
from acme_ca.config import PolicyConfig
from acme_ca.config_policy import Profile
from acme_ca.domain.audit import AuditAction
from acme_ca.domain.models import CertificateRecord, Order, OrderStatus, serial_hex
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.errors import AcmeCaError, Conflict, PolicyError, StoreError, StoreUnavailable
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import describe_key
from acme_ca.pki.profiles import LeafRequest, leaf_not_after
from acme_ca.pki.serials import random_serial
from acme_ca.pki.signer import off_loop
from acme_ca.store.base import Store

T = TypeVar("T")

log = logging.getLogger(__name__)

DRAIN_LIMIT = 30.0  # seconds shutdown waits for issuances in flight before the store closes


def certificate_window(
    not_before: datetime | None,
    not_after: datetime | None,
    now: datetime,
    policy: PolicyConfig,
    issuer_end: datetime,
    *,
    validity: timedelta | None = None,
    profile: Profile,
) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) of a certificate signed at `now`, the one place that
    decides it (newOrder, finalize, `acme-ca sign-csr`); PolicyError if none is signable
    within policy. `not_before`/`not_after` are what a client asked for (RFC 8555
    7.1.3), or None; `issuer_end` is the intermediate's notAfter; `validity` the
    lifetime without a `not_after` (sign-csr's --validity; when None, the profile's
    default_validity); `profile`'s max_validity caps it.

    The start: the requested notBefore as given, or now - backdate (clock skew, RFC 5280
    4.1.2.5); never earlier than now - backdate, however long ago the order was made.
    Without a notBefore but with a notAfter, the backdate comes from inside the window,
    never added to it. The end: the requested notAfter, else `validity` from the start
    (as Boulder, the backdate counts inside it); cut at `issuer_end`. Refused: a
    `validity` over `max_validity`; a window that ends before it can begin (the issuer
    ends first, or the requested notAfter has passed); one longer than `max_validity`.
    """
    max_validity = profile.max_validity
    maximum = f"profiles.{profile.name}.max_validity"
    validity = profile.default_validity if validity is None else validity
    if validity > max_validity:
        raise PolicyError(f"a validity of {validity} exceeds {maximum} ({max_validity})")
    earliest = now - policy.backdate
    if not_before is not None:
        start = max(not_before, earliest)
    elif not_after is not None:
        start = max(earliest, not_after - max_validity)
    else:
        start = earliest
    end = min(not_after or start + validity, issuer_end)
    begin = max(start, now)
    if end <= begin:
        ends = (f"the issuing CA's certificate ends {issuer_end:%Y-%m-%dT%H:%M:%SZ}"
                if issuer_end <= begin else
                f"the requested notAfter is {end:%Y-%m-%dT%H:%M:%SZ}")
        raise PolicyError(f"no certificate can be issued: {ends}, not after "
                          f"{begin:%Y-%m-%dT%H:%M:%SZ}, when it would begin")
    if end - start > max_validity:
        raise PolicyError(f"a validity of {end - start} exceeds {maximum} ({max_validity})")
    return start, end


def reservation(
    issuer: Issuer,
    request: LeafRequest,
    now: datetime,
    *,
    profile: str,
    account_id: str | None = None,
    order_id: str | None = None,
) -> tuple[CertificateRecord, LeafRequest]:
    """The RESERVED record to store before signing, and the request with its serial;
    ``profile``: the name of the profile it is issued under."""
    serial = request.serial or random_serial()
    record = CertificateRecord(
        serial=serial_hex(serial),
        issuer=issuer.fingerprint,
        names=request.dns_names + tuple(str(a) for a in request.ip_addresses),
        profile=profile,
        not_before=request.not_before,
        not_after=leaf_not_after(issuer.certificate, request.not_after),  # as signed
        created_at=now,
        account_id=account_id,
        order_id=order_id,
    )
    return record, replace(request, serial=serial)


async def issue(
    store: Store,
    issuer: Issuer,
    request: LeafRequest,
    now: datetime,
    *,
    profile: str,
    sign: Callable[[LeafRequest], x509.Certificate] | None = None,
    action: AuditAction = AuditAction.CERTIFICATE_ISSUED,
    details: Mapping[str, str | int | bool | None] | None = None,
) -> x509.Certificate:
    """Sign `request` with the intermediate, recording it in `store` before and after
    (a certificate of no account or order: sign-csr, the server's own, an OCSP
    responder's), as issued under `profile`, and in the audit log; `sign`: what builds
    it from the request with its reserved serial, when not `issuer.issue` (a leaf),
    called in the signing pool (``off_loop``), never on the event loop;
    `action` and `details`: the audit entry's, when not a plain issuance's."""
    record, request = reservation(issuer, request, now, profile=profile)
    await store.reserve_serial(record)
    certificate = await off_loop(sign or issuer.issue, request)
    await store.store_certificate(record.serial, certificate.public_bytes(Encoding.DER))
    await audited(Auditor(store, SystemClock()), record, request, at=now, action=action,
                  details=details)
    counted(profile, request)
    return certificate


async def audited(auditor: Auditor, record: CertificateRecord, request: LeafRequest,
                  at: datetime | None = None, *,
                  action: AuditAction = AuditAction.CERTIFICATE_ISSUED,
                  details: Mapping[str, str | int | bool | None] | None = None) -> None:
    """The audit entry of a certificate just stored as signed: its serial, names,
    profile, key type, and its order and account when it has them (and ``details``)."""
    await auditor.record(
        action, identifiers=record.names, serial=record.serial,
        details={"profile": record.profile, "key_type": describe_key(request.public_key),
                 "order": record.order_id, "account": record.account_id, **(details or {})},
        at=at)


async def _audited_if_stored(store: Store, auditor: Auditor, record: CertificateRecord,
                             request: LeafRequest) -> None:
    """A ``finish_order`` cut short may have committed, its answer lost: then the order is
    VALID (the sweeper never sees it) and the certificate stored with no audit entry.
    If it reads back as stored, append its entry now; if it cannot be read, say so."""
    try:
        stored = await store.get_certificate(record.serial)
    except StoreError as exc:
        log.error("certificate %s may have been stored without its audit entry (the "
                  "database cannot be reached: %s); look for it in the store", record.serial,
                  exc)
        return
    if stored.der is not None:
        await audited(auditor, stored, request)


def counted(profile: str, request: LeafRequest) -> None:
    """One more certificate signed and stored, in the issuance metric."""
    metrics.ISSUANCES.labels(profile, key_type(request.public_key) or "other").inc()


async def sign_for_order(
    store: Store, issuer: Issuer, request: LeafRequest, record: CertificateRecord,
    auditor: Auditor,
) -> Order:
    """Sign for an order whose serial ``record`` is reserved (``Store.start_issuance``,
    which also moved the order to PROCESSING) and store the certificate with the order's
    move to VALID in one transaction (``finish_order``), then record it with
    ``auditor``; the order comes back as it ends.

    A sweeper in another process (``serve --workers``, replicas) knows nothing of this
    issuance and may end the order meanwhile, its deadline being a guess (sweeper.py):
    - before the signature: the order is read just before signing; no longer PROCESSING,
      nothing is signed, the serial stays RESERVED, the order comes back as it was left;
    - after that read: ``finish_order`` stores the certificate all the same (ISSUED, for
      its order) and leaves the order INVALID, so the store knows every certificate the
      intermediate signed (Boulder's rule). That is why a read suffices: what slips
      between it and the signature is recorded, never lost.
    Such a certificate is recorded, not revoked: it names only identifiers the account
    validated, its key is the account's CSR key, and it was never delivered (the order
    has no certificate URL; its serial is logged here, for the operator, and told to no
    client). Revoking it would list on every CRL until it expires a certificate nobody holds.

    The database out of reach (``StoreUnavailable``) is raised as it is, for the client
    to hear 503 with Retry-After: the order stays PROCESSING, since nothing can be
    written (and a ``finish_order`` cut short may even have been committed: if its
    certificate then reads back as stored, its audit entry is appended), and the
    sweeper of the lease holder ends it once the database is back: VALID if the
    certificate was stored, else INVALID. On any other failure the order becomes INVALID
    with serverInternal (the serial stays RESERVED) and that problem is raised; if the
    store refuses that write too, the order stays PROCESSING until the sweeper ends it.
    An AcmeCaError (a key or token that cannot sign) is logged in one line, anything
    else with its traceback (a bug)."""
    order_id = record.order_id
    if order_id is None:
        raise ValueError("the reservation names no order")
    try:
        current = await store.get_order(order_id)
        if current.status is not OrderStatus.PROCESSING:
            log.warning("order %s became %s before its certificate was signed (a sweeper "
                        "ended it): nothing signed, serial %s stays reserved",
                        order_id, current.status.value, record.serial)
            return current
        certificate = await off_loop(issuer.issue, request)
        order = await store.finish_order(order_id, record.serial,
                                         certificate.public_bytes(Encoding.DER))
    except StoreUnavailable as exc:
        log.warning("order %s stays processing until the sweeper ends it, the database "
                    "cannot be reached (%s); serial %s", order_id, exc, record.serial)
        await _audited_if_stored(store, auditor, record, request)
        raise
    except Exception as exc:
        if isinstance(exc, AcmeCaError):  # e.g. a token out of reach: said, not a bug
            log.error("issuance for order %s failed: %s", order_id, exc)
        else:
            log.exception("issuance for order %s failed", order_id)
        problem = AcmeProblem(ProblemType.SERVER_INTERNAL, "issuance failed", status=500)
        try:
            await store.update_order_status(order_id, expected=OrderStatus.PROCESSING,
                                            status=OrderStatus.INVALID, error=problem.dumps())
        except Conflict:
            pass  # ended meanwhile, by the sweeper
        except StoreError as unwritten:
            log.error("order %s stays processing until the sweeper ends it: %s",
                      order_id, unwritten)
        raise problem from exc
    await audited(auditor, record, request)
    counted(record.profile, request)
    if order.status is OrderStatus.VALID:
        log.info("order %s: certificate %s for %s", order_id, record.serial,
                 ", ".join(record.names))
    else:
        log.warning("order %s became %s while its certificate %s was signed (a sweeper "
                    "ended it): the certificate is stored as issued, never delivered",
                    order_id, order.status.value, record.serial)
    return order


class InFlight:
    """Issuances that run to their end whatever happens to the request that started them,
    by order id (``order_id in in_flight``: the sweeper leaves those orders alone).

    ``run`` starts the work in a task owned here and waits for it through
    ``asyncio.shield``, so cancelling the caller leaves the work running. What cancels a
    finalize: not a client going away (aiohttp 3.14 runs a handler to its end unless
    ``handler_cancellation`` is set, and serve does not set it), but the server stopping
    (``AppRunner.cleanup`` waits ``shutdown_timeout``, 60 s, for running handlers, then
    cancels them) and in-process callers. Why shield rather than fail the order on
    cancellation: the work takes milliseconds and is already paid for (a serial reserved,
    perhaps a signature made); finished, it leaves the client a valid order to fetch when
    it polls again. Failing the order on ``CancelledError`` would need a write inside a
    task being cancelled, which a second cancellation interrupts, and could not know
    whether an interrupted ``start_issuance`` was committed after all (a cancelled writer
    may be: ``store/sqlite/commits``).

    A failure nobody is left to hear (its caller was cancelled) is logged once, with the
    order id; a caller that waits hears it as an exception (an ``AcmeProblem``, or a
    serverInternal problem from the front end, which logs it). ``drain`` waits for all
    of it at shutdown, before the store closes, at most ``DRAIN_LIMIT``; what it leaves,
    and what a dead process leaves, the sweeper ends after the restart.
    """

    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], str] = {}  # task -> order id
        self._unheard: set[asyncio.Task[Any]] = set()  # tasks whose caller was cancelled

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._tasks.values()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._tasks.values()))

    async def run(self, order_id: str, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work``, the issuance for ``order_id``, to its end; its result."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks[task] = order_id
        task.add_done_callback(self._done)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():  # it ended as its caller was cancelled: told to nobody
                _report(order_id, task)
            else:
                self._unheard.add(task)
            raise

    def _done(self, task: asyncio.Task[Any]) -> None:
        order_id = self._tasks.pop(task)
        if task in self._unheard:
            self._unheard.discard(task)
            _report(order_id, task)

    async def drain(self, limit: float | None = None) -> None:
        """Wait for every issuance in flight, at most ``limit`` seconds (None:
        ``DRAIN_LIMIT``); then cancel those left, saying how many."""
        limit = DRAIN_LIMIT if limit is None else limit
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(self._tasks), timeout=left)
        if self._tasks:
            log.warning("%d issuance(s) still running after %gs at shutdown: cancelled; "
                        "the sweeper ends their orders after the restart",
                        len(self._tasks), limit)
            for task in list(self._tasks):
                task.cancel()


def _report(order_id: str, task: asyncio.Task[Any]) -> None:
    """Log, once, how an issuance whose caller is gone failed (reading its exception, so
    asyncio never reports it as never retrieved). An ``AcmeProblem`` is an answer, not a
    failure to log: orderNotReady, or serverInternal that ``sign_for_order`` logged."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, AcmeProblem):
        log.error("issuance for order %s failed after its request was cancelled: %s",
                  order_id, exc, exc_info=exc)
