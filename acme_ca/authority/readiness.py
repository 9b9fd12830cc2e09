"""Whether this process should be sent traffic: the checks behind ``/readyz`` (issue 13 item 1).

``/healthz`` says only that the process answers; a load balancer asks ``/readyz``
every second or so, and sends requests elsewhere while one of these fails:

- ``store``: the database answers a cheap read (who holds the background lease: one
  indexed row) within ``STORE_TIMEOUT`` seconds. Anyone who reaches the listener may
  ask, so probes at once share one read, and its answer is reused for ``STORE_CACHE``
  seconds: a flood of probes is not a flood of database reads. What failed is named by
  the exception's type only (its text may name a host or a user): the log has it;
- ``signing``: the current intermediate's key signs (a fixed message, verified with the
  intermediate certificate's public key: a key file swapped for another, or a PKCS#11
  token gone, fails here and not at the next finalize). The result is kept for
  ``SIGNING_CACHE`` seconds per intermediate, so polling every second costs one
  signature every few seconds;
- ``certificates``: neither the root nor the intermediate expires within
  ``EXPIRY_MARGIN`` (30 days): time to renew (``acme-ca intermediate renew``), not yet
  an outage;
- ``background_lease``: some process of the cluster (this one or another replica)
  holds the background lease unexpired (``background.py``): without it no order left
  processing is ended, nothing expires, no CRL is published. Read through the store,
  so it fails with ``store`` too. When a holder dies its lease expires and a survivor
  takes it at its next try, up to ``PERIOD`` later: a check in that gap would fail on
  every replica at once and a load balancer would take them all out, so the check
  fails only once no holder has been seen for ``LEASE_GRACE`` (a process that never
  saw one fails at once).

A check never raises: each failure is a line of text that names what to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from acme_ca.authority.background import LEASE, PERIOD
from acme_ca.clock import Clock
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.signer import off_loop, verify_signature
from acme_ca.store.cluster import LeaseStore

STORE_TIMEOUT = 2.0  # seconds: a database slower than this is not ready for requests
STORE_CACHE = 1.0  # seconds a store check's result is reused
SIGNING_CACHE = 5.0  # seconds a signing check's result is reused
EXPIRY_MARGIN = timedelta(days=30)
LEASE_GRACE = 3 * PERIOD  # seconds without a lease holder before the check fails
MESSAGE = b"acme-ca readiness: the intermediate key signs"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: ``detail`` says what failed (empty when ``ok``)."""

    name: str
    ok: bool
    detail: str = ""


class Readiness:
    """The checks of ``/readyz`` for one process (see the module docstring)."""

    def __init__(
        self,
        store: LeaseStore,
        issuer: Callable[[], Issuer],
        clock: Clock,
        *,
        store_timeout: float = STORE_TIMEOUT,
        signing_cache: float = SIGNING_CACHE,
    ) -> None:
        self._store = store
        self._issuer = issuer
        self._clock = clock
        self._store_timeout = store_timeout
        self._signing_cache = signing_cache
        self._signed: tuple[str, float, Check] | None = None  # fingerprint, when, result
        self._holder_seen: float | None = None  # when a lease holder was last seen
        self._stored: tuple[float, tuple[Check, Check]] | None = None  # when, result
        self._reading: asyncio.Task[tuple[Check, Check]] | None = None  # the read under way

    async def checks(self) -> Sequence[Check]:
        """Every check, in a fixed order; never raises."""
        issuer = self._issuer()
        store, lease = await self._store_and_lease()
        return (store, await self._signing(issuer),
                certificates_check(issuer, self._clock.now()), lease)

    async def _store_and_lease(self) -> tuple[Check, Check]:
        """The store's answer if younger than ``STORE_CACHE``, else the one read under
        way (shielded: a probe that hangs up does not cancel it for the others)."""
        if self._stored is not None:
            when, result = self._stored
            if self._clock.monotonic() - when < STORE_CACHE:
                return result
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read_store())
        return await asyncio.shield(self._reading)

    async def _read_store(self) -> tuple[Check, Check]:
        try:
            result = await self._store_and_lease_now()
            self._stored = (self._clock.monotonic(), result)
            return result
        finally:
            self._reading = None

    async def _store_and_lease_now(self) -> tuple[Check, Check]:
        try:
            holder = await asyncio.wait_for(self._store.lease_holder(LEASE), self._store_timeout)
        except TimeoutError:
            failed = f"the database did not answer within {self._store_timeout:g}s"
        except Exception as exc:
            log.warning("readiness: the database cannot be read: %s: %s",
                        type(exc).__name__, exc)
            failed = (f"the database cannot be read: {type(exc).__name__} (the server's "
                      "log has more)")
        else:
            now = self._clock.monotonic()
            if holder is not None:
                self._holder_seen = now
            if self._holder_seen is None or now - self._holder_seen >= LEASE_GRACE:
                return Check("store", True), Check(
                    "background_lease", False,
                    "no process holds the background lease: orders left processing are "
                    "not ended, nothing expires, no CRL is published")
            return Check("store", True), Check("background_lease", True)
        return Check("store", False, failed), Check(
            "background_lease", False, "unknown: the database cannot be read")

    async def _signing(self, issuer: Issuer) -> Check:
        now = self._clock.monotonic()
        if self._signed is not None:
            fingerprint, when, result = self._signed
            if fingerprint == issuer.fingerprint and now - when < self._signing_cache:
                return result
        result = await off_loop(signing_check, issuer)
        self._signed = (issuer.fingerprint, now, result)
        return result


def signing_check(issuer: Issuer) -> Check:
    """Sign ``MESSAGE`` through the intermediate's signer (a key file or a token);
    verify it with its certificate's public key. Blocking: run it ``off_loop``."""
    signer = issuer.signer
    try:
        signature = signer.sign(MESSAGE)
    except Exception as exc:  # a token may fail in ways of its own: say it, never raise
        return Check("signing", False, f"the intermediate key cannot sign: "
                     f"{str(exc) or type(exc).__name__}")
    if not verify_signature(issuer.certificate.public_key(), signature,  # type: ignore[arg-type]
                            MESSAGE, signer.hash_algorithm):
        return Check("signing", False, "the intermediate key cannot sign: its certificate "
                     "does not verify the signature")
    return Check("signing", True)


def certificates_check(issuer: Issuer, now: datetime,
                       margin: timedelta = EXPIRY_MARGIN) -> Check:
    """Neither the root nor the intermediate expires within ``margin`` of ``now``."""
    soon = [_expiry(name, cert, now) for name, cert in
            (("root", issuer.root), ("intermediate", issuer.certificate))
            if cert.not_valid_after_utc - now < margin]
    if soon:
        return Check("certificates", False, "; ".join(soon) + " (renew with `acme-ca "
                     "intermediate renew`; a root needs a new hierarchy)")
    return Check("certificates", True)


def _expiry(name: str, cert: x509.Certificate, now: datetime) -> str:
    left = cert.not_valid_after_utc - now
    return (f"the {name} certificate expires on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} "
            f"UTC, in {max(left.days, 0)} days")
