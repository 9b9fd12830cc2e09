"""`acme-ca certs revoke --account ID | --issued-before DATE`: revoke many certificates
at once (an account compromised, an intermediate's key leaked), each through the
operator's revocation (``RevocationService.revoke_by_operator``), one by one, as
`certs revoke SERIAL` does: the running server publishes them on its next CRL.

The certificates chosen are the signed, unrevoked, unexpired ones of the account
and/or issued (created) before the moment. Nothing is revoked before the operator
confirms the count: `--dry-run` lists them and changes nothing; on a terminal the
command asks for the count to be typed back; elsewhere `--confirm N` must give it. A
count that changed in between (a certificate issued or revoked meanwhile) stops the
command before it revokes anything. A certificate revoked by someone else while the
command runs is counted as such, not as a failure. A bar shows the progress on a
terminal (``progress``); each revocation writes its audit line (``cli/audit``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime

from acme_ca.authority.revocation import RevocationService, reason_name
from acme_ca.cli import certs_view as view
from acme_ca.cli.audit import audit
from acme_ca.cli.certs_args import parse_moment, parse_reason
from acme_ca.cli.progress import progress
from acme_ca.cli.store_session import pages, with_store
from acme_ca.clock import SystemClock
from acme_ca.config import Config
from acme_ca.domain.models import CertificateRecord, CertificateStatus
from acme_ca.errors import ConfigError, Conflict, NotFound
from acme_ca.store.base import Store

SHOWN = 20  # certificates a dry run or a question names before "and N more"


@dataclass(frozen=True, slots=True)
class Selection:
    account: str | None
    before: datetime | None

    def describe(self) -> str:
        parts = ([f"of the account {view.printable(self.account)}"] if self.account else [])
        if self.before is not None:
            parts.append(f"issued before {self.before:%Y-%m-%d %H:%M:%S} UTC")
        return "unexpired certificates " + " and ".join(parts)

    def takes(self, record: CertificateRecord, now: datetime) -> bool:
        return (record.status is CertificateStatus.ISSUED and record.not_after > now
                and (self.account is None or record.account_id == self.account)
                and (self.before is None or record.created_at < self.before))


async def chosen(store: Store, selection: Selection, now: datetime
                 ) -> list[CertificateRecord]:
    if selection.account is not None:
        try:
            await store.get_account(selection.account)
        except NotFound:
            raise NotFound(f"no account has the id {view.printable(selection.account)}"
                           ) from None
    return [record async for record in pages(store, status=CertificateStatus.ISSUED)
            if selection.takes(record, now)]


def run_bulk_revoke(config: Config, args: argparse.Namespace) -> int:
    reason = parse_reason(args.reason)
    now = SystemClock().now()
    before = None if args.issued_before is None else parse_moment(args.issued_before)
    if before is not None and before > now:
        raise ConfigError(f"--issued-before: {before:%Y-%m-%d %H:%M:%S} UTC is in the "
                          "future; give a moment in the past")
    selection = Selection(args.account, before)
    records = with_store(config, lambda store: chosen(store, selection, now))
    what = selection.describe()
    if not records:
        print(f"No {what}: nothing to revoke.")
        return 0
    if args.dry_run:
        _name(records)
        print(f"Would revoke {len(records)} {what}, reason {reason_name(reason)}. "
              "Nothing was changed (--dry-run).")
        return 0
    _confirm(len(records), what, args.confirm)
    revoked, already = with_store(config, lambda store: _revoke_all(config, store, records,
                                                                    reason))
    print(f"Revoked {revoked} {what}, reason {reason_name(reason)}"
          + (f" ({already} revoked meanwhile by someone else)" if already else "")
          + ". The running server rebuilds its CRLs within seconds.")
    return 0


def _name(records: list[CertificateRecord]) -> None:
    for record in records[:SHOWN]:
        print(f"  {record.serial}  {view.names(record)}")
    if len(records) > SHOWN:
        print(f"  and {len(records) - SHOWN} more")


def _confirm(count: int, what: str, given: int | None) -> None:
    """Go on only when the operator gave the count: ``--confirm N``, or typed back on a
    terminal; ``ConfigError`` otherwise, nothing revoked."""
    if given is not None:
        if given != count:
            raise ConfigError(f"--confirm {given}, but {count} {what} match now; nothing "
                              "was revoked (look again with --dry-run)")
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"{count} {what} match: give --confirm {count} to revoke them "
                          "(--dry-run lists them)")
    print(f"{count} {what} will be revoked.")
    try:
        answer = input(f"Type {count} to revoke them: ").strip()
    except EOFError:
        answer = ""
    if answer != str(count):
        raise ConfigError("not confirmed; nothing was revoked")


async def _revoke_all(config: Config, store: Store, records: list[CertificateRecord],
                      reason: int) -> tuple[int, int]:
    """Revoke each record; (revoked now, revoked by someone else meanwhile)."""
    service = RevocationService(store, SystemClock())
    revoked = already = 0
    with progress("Revoking", len(records)) as bar:
        for record in records:
            try:
                done = await service.revoke_by_operator(record.serial, reason)
            except Conflict:  # revoked since it was chosen: what was asked holds
                already += 1
            else:
                revoked += 1
                audit(config, f"revoked the certificate {done.serial} "
                      f"({view.names(done)}), reason {reason_name(reason)}")
            bar.advance()
    return revoked, already
