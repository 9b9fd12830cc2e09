"""`acme-ca certs renew-early`: mark certificates for early renewal, one by its serial
or every unexpired one issued before a moment (an intermediate rotated, a key
compromised). Their renewal information (ARI, RFC 9773 4.2) then suggests a window in
the past, and ACME clients that read it renew them at their next check. Each mark is
audited: a line on standard error (``audit``) and an entry in the store's audit log
(``Auditor``), one per command, whoever runs it (``cli:<user>``)."""

from __future__ import annotations

import argparse
from datetime import datetime

from acme_ca.authority.audit import Auditor
from acme_ca.cli import certs_view as view
from acme_ca.cli.audit import audit
from acme_ca.cli.certs_args import parse_moment, parse_serial
from acme_ca.cli.store_session import pages, with_store
from acme_ca.clock import SystemClock
from acme_ca.config import Config
from acme_ca.domain.audit import AuditAction
from acme_ca.domain.models import CertificateRecord, CertificateStatus
from acme_ca.errors import ConfigError, Conflict, NotFound
from acme_ca.store.base import Store


def run_renew_early(config: Config, args: argparse.Namespace) -> int:
    if (args.serial is None) == (args.issued_before is None):
        raise ConfigError("renew-early: give either a SERIAL or --issued-before DATE")
    if args.dry_run and args.issued_before is None:
        raise ConfigError("renew-early: --dry-run goes with --issued-before DATE")
    now = SystemClock().now()
    if args.issued_before is not None:
        return _renew_issued_before(config, parse_moment(args.issued_before), now,
                                    dry_run=args.dry_run)
    serial = parse_serial(args.serial)

    async def mark(store: Store) -> CertificateRecord:
        try:
            record = await store.mark_renew_early(serial, now)
        except NotFound:
            raise NotFound(f"no certificate has the serial {serial}") from None
        except Conflict:
            raise Conflict(f"the serial {serial} was reserved but never signed: there is "
                           "no certificate to renew") from None
        if not _marked_before(record, now):
            await Auditor(store, SystemClock()).record(
                AuditAction.CERTIFICATE_RENEW_EARLY, identifiers=record.names,
                serial=record.serial)
        return record

    record = with_store(config, mark)
    if _marked_before(record, now):
        print(f"The certificate {serial} was already marked for early renewal "
              f"({view.when(record.renew_early_at)}): 0 marked. {AFTER_MARKING}")
    else:
        audit(config, f"marked the certificate {serial} "
              f"({view.names(record)}) for early renewal")
        print(f"Marked 1 certificate ({serial}: {view.names(record)}) for early "
              f"renewal. {AFTER_MARKING}")
    return 0


def _marked_before(record: CertificateRecord, now: datetime) -> bool:
    """Was the certificate marked before this command (which then changed nothing)?"""
    return record.renew_early_at is not None and record.renew_early_at < now


AFTER_MARKING = ("ACME clients that read renewal information (ARI) renew them at their "
                 "next check.")


def _renew_issued_before(config: Config, before: datetime, now: datetime, *,
                         dry_run: bool) -> int:
    """`renew-early --issued-before`: mark (or, dry, count) every signed certificate
    created before ``before`` and unexpired now; a moment after now is refused (it
    would mark every certificate, the newest too)."""
    if before > now:
        raise ConfigError(f"--issued-before: {before:%Y-%m-%d %H:%M:%S} UTC is in the "
                          "future; give a moment in the past")

    async def act(store: Store) -> tuple[int, int]:
        unmarked, marked = await _issued_before(store, before, now)
        if dry_run:
            return unmarked, marked
        count = await store.mark_renew_early_issued_before(before, now, unexpired_at=now)
        if count == 0:  # nothing changed: nothing to record
            return count, marked
        await Auditor(store, SystemClock()).record(
            AuditAction.CERTIFICATE_RENEW_EARLY,
            details={"issued_before": before.isoformat(), "count": count,
                     "already_marked": marked})
        return count, marked

    count, already = with_store(config, act)
    plural = "s" if count != 1 else ""
    which = f"unexpired certificate{plural} issued before {before:%Y-%m-%d %H:%M:%S} UTC"
    if not dry_run:
        audit(config, f"marked {count} {which} for early renewal ({already} marked before)")
    if dry_run:
        print(f"Would mark {count} {which} for early renewal ({already} already marked). "
              "Nothing was changed (--dry-run).")
    elif count == 0:
        print(f"No unexpired certificate issued before {before:%Y-%m-%d %H:%M:%S} UTC is "
              f"left to mark: {already} already marked for early renewal.")
    else:
        print(f"Marked {count} {which} for early renewal. {AFTER_MARKING}")
    return 0


async def _issued_before(store: Store, before: datetime, now: datetime) -> tuple[int, int]:
    """How many signed certificates (issued or revoked) created before ``before`` and
    unexpired at ``now`` are (not yet, already) marked for early renewal: what
    ``mark_renew_early_issued_before`` would mark, what it would leave."""
    unmarked = marked = 0
    async for record in pages(store):
        if record.created_at >= before:  # oldest first: none later is either
            break
        if record.status is CertificateStatus.RESERVED or record.not_after <= now:
            continue
        if record.renew_early_at is None:
            unmarked += 1
        else:
            marked += 1
    return unmarked, marked
