"""`acme-ca accounts list | show | deactivate`: the ACME accounts (RFC 8555 7.1.2) as the
operator sees and acts on them.

`deactivate` is the operator's counterpart of a client's own deactivation (RFC 8555
7.3.6): a compare-and-set from valid to deactivated in the store, so that of an
operator and the client racing one wins and the other is told. From then on every
request the account signs is refused with 401 unauthorized (``authority/accounts.
not_usable``); its certificates stay valid (revoke them with `certs revoke --account`).
It is recorded in the audit log (account.deactivated, actor cli:USER) and as an audit
line on standard error (``cli/audit``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acme_ca.authority.audit import Auditor
from acme_ca.cli import tables
from acme_ca.cli.audit import audit
from acme_ca.cli.certs_view import iso, printable, when
from acme_ca.cli.store_session import newest_first, pages, with_store
from acme_ca.clock import SystemClock
from acme_ca.config import Config
from acme_ca.domain.audit import AuditAction
from acme_ca.domain.models import Account, AccountStatus, CertificateRecord, Order
from acme_ca.errors import Conflict, NotFound
from acme_ca.store.base import Store

COLUMNS = ("ID", "STATUS", "CONTACT", "CREATED", "EAB KID")


def add_parser(commands: Any) -> None:
    group = commands.add_parser(
        "accounts", help="ACME accounts: list, show, deactivate",
        description="The ACME accounts clients registered (RFC 8555 7.3).")
    tools = group.add_subparsers(dest="accounts_command", required=True, metavar="COMMAND")
    listing = tools.add_parser("list", help="list accounts, newest first",
                               description="List accounts, newest first: id, status, "
                               "contact, created, EAB key id (- for none).")
    tables.listing_options(listing, "accounts", (s.value for s in AccountStatus))
    listing.set_defaults(run=run_list)
    show = tools.add_parser("show", help="one account, its orders and certificates",
                            description="One account: contact, key thumbprint (RFC 7638), "
                            "EAB key id, created, status; how many orders and certificates "
                            "it has, and its latest of each.")
    show.add_argument("id", help="the account id, as `accounts list` prints it (an id "
                      "made before ids stopped starting with '-' goes after '--')")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(run=run_show)
    deactivate = tools.add_parser(
        "deactivate", help="deactivate an account: it can no longer act",
        description="Deactivate an account (RFC 8555 7.3.6): from now on the server "
        "refuses every request it signs (401 unauthorized). Its certificates stay valid.")
    deactivate.add_argument("id", help="the account id (one that starts with '-' goes "
                            "after '--')")
    deactivate.add_argument("--dry-run", action="store_true",
                            help="only say what would be deactivated")
    deactivate.set_defaults(run=run_deactivate)


def account_json(account: Account) -> dict[str, Any]:
    return {"id": account.id, "status": account.status.value,
            "contact": list(account.contact), "thumbprint": account.thumbprint,
            "eab_kid": account.eab_kid, "terms_agreed": account.terms_agreed,
            "created_at": iso(account.created_at)}


def run_list(config: Config, args: argparse.Namespace) -> int:
    tables.check_limit(args.limit)
    status = tables.status(args.status, AccountStatus)

    async def read(store: Store) -> list[Account]:
        return await newest_first(
            lambda before, before_id, limit: store.list_accounts(
                status=status, before=before, before_id=before_id, limit=limit),
            args.limit)

    accounts = with_store(config, read)
    tables.print_listing(
        accounts, as_json=args.json, to_json=account_json, columns=COLUMNS,
        to_row=lambda a: [a.id, a.status.value, ", ".join(a.contact) or "-",
                          when(a.created_at), a.eab_kid or "-"],
        empty="No accounts.", whole=("ID", "STATUS"))
    return 0


@dataclass(frozen=True, slots=True)
class Activity:
    """An account's orders and certificates: how many, and the latest of each."""

    orders: int
    latest_order: Order | None
    certificates: int
    latest_certificate: CertificateRecord | None


async def account_orders(store: Store, account_id: str) -> list[Order]:
    """Every order of the account the store still keeps, newest first."""
    return await newest_first(
        lambda before, before_id, limit: store.list_orders(
            account_id=account_id, before=before, before_id=before_id, limit=limit))


async def account_certificates(store: Store, account_id: str) -> list[CertificateRecord]:
    """The certificates signed for the account (not serials only reserved), oldest
    first."""
    return [record async for record in pages(store)
            if record.account_id == account_id and record.der is not None]


async def activity(store: Store, account_id: str) -> Activity:
    orders = await account_orders(store, account_id)
    certificates = await account_certificates(store, account_id)
    return Activity(len(orders), orders[0] if orders else None, len(certificates),
                    certificates[-1] if certificates else None)


async def get_account(store: Store, account_id: str) -> Account:
    try:
        return await store.get_account(account_id)
    except NotFound:
        raise NotFound(f"no account has the id {printable(account_id)}") from None


def run_show(config: Config, args: argparse.Namespace) -> int:
    async def read(store: Store) -> tuple[Account, Activity]:
        account = await get_account(store, args.id)
        return account, await activity(store, account.id)

    account, seen = with_store(config, read)
    order, certificate = seen.latest_order, seen.latest_certificate
    fields = account_json(account) | {
        "orders": seen.orders,
        "latest_order": None if order is None else {
            "id": order.id, "status": order.status.value,
            "created_at": iso(order.created_at)},
        "certificates": seen.certificates,
        "latest_certificate": None if certificate is None else {
            "serial": certificate.serial, "names": list(certificate.names),
            "not_after": iso(certificate.not_after)},
    }
    if args.json:
        tables.print_json(fields)
        return 0
    shown: list[tuple[str, str]] = [
        ("id", account.id), ("status", account.status.value),
        ("contact", ", ".join(account.contact) or "-"),
        ("key thumbprint", account.thumbprint), ("eab kid", account.eab_kid or "-"),
        ("terms agreed", "yes" if account.terms_agreed else "no"),
        ("created", when(account.created_at)), ("orders", str(seen.orders)),
        ("latest order", "-" if order is None else
         f"{order.id} ({order.status.value}, {when(order.created_at)})"),
        ("certificates", str(seen.certificates)),
        ("latest certificate", "-" if certificate is None else
         f"{certificate.serial} ({', '.join(certificate.names)}, "
         f"until {when(certificate.not_after)})"),
    ]
    print_fields(shown)
    return 0


def print_fields(fields: Sequence[tuple[str, str]]) -> None:
    """One "name  value" line per field, control characters as \\xNN."""
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name:<{width}}  {printable(value)}")


def run_deactivate(config: Config, args: argparse.Namespace) -> int:
    async def change(store: Store) -> tuple[Account, bool]:
        account = await get_account(store, args.id)
        if account.status is not AccountStatus.VALID:
            raise Conflict(f"the account {account.id} is {account.status.value} already")
        if args.dry_run:
            return account, False
        try:
            changed = await store.update_account(account.id, expected_status=AccountStatus.VALID,
                                                 status=AccountStatus.DEACTIVATED)
        except Conflict:  # the client (or another operator) was first
            now = await store.get_account(account.id)
            raise Conflict(f"the account {account.id} is {now.status.value} already"
                           ) from None
        await Auditor(store, SystemClock()).record(
            AuditAction.ACCOUNT_DEACTIVATED, details={"account": changed.id, "by": "operator"})
        return changed, True

    account, changed = with_store(config, change)
    contact = printable(", ".join(account.contact)) or "no contact"
    if not changed:
        print(f"Would deactivate the account {account.id} ({contact}); nothing changed.")
        return 0
    audit(config, f"deactivated the account {account.id} ({contact})")
    print(f"Deactivated the account {account.id} ({contact}): the server refuses its "
          "requests from now on (401 unauthorized); its certificates stay valid.")
    return 0
