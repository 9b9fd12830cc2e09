"""`acme-ca orders list`: the ACME orders (RFC 8555 7.1.3) the store keeps, newest first
(expired ones are deleted after [retention] grace), as the operator looks for one
that failed or hangs."""

from __future__ import annotations

import argparse
from typing import Any

from acme_ca.cli import tables
from acme_ca.cli.certs_view import iso, when
from acme_ca.cli.store_session import newest_first, with_store
from acme_ca.config import Config
from acme_ca.domain.models import Order, OrderStatus
from acme_ca.store.base import Store

COLUMNS = ("ID", "ACCOUNT", "STATUS", "IDENTIFIERS", "PROFILE", "CREATED", "CERTIFICATE")


def add_parser(commands: Any) -> None:
    group = commands.add_parser("orders", help="ACME orders: list",
                                description="The ACME orders clients placed (RFC 8555 7.4).")
    tools = group.add_subparsers(dest="orders_command", required=True, metavar="COMMAND")
    listing = tools.add_parser(
        "list", help="list orders, newest first",
        description="List orders, newest first: id, account, status, identifiers, "
        "profile, created, and the certificate's serial once issued (- before).")
    listing.add_argument("--account", default=None, metavar="ID",
                         help="only this account's orders")
    tables.listing_options(listing, "orders", (s.value for s in OrderStatus))
    listing.set_defaults(run=run_list)


def order_json(order: Order) -> dict[str, Any]:
    return {"id": order.id, "account_id": order.account_id, "status": order.status.value,
            "identifiers": [{"type": i.type, "value": i.value} for i in order.identifiers],
            "profile": order.profile, "created_at": iso(order.created_at),
            "expires": iso(order.expires), "not_before": iso(order.not_before),
            "not_after": iso(order.not_after), "certificate_serial": order.certificate_serial,
            "replaces": order.replaces, "error": order.error}


def run_list(config: Config, args: argparse.Namespace) -> int:
    tables.check_limit(args.limit)
    status = tables.status(args.status, OrderStatus)

    async def read(store: Store) -> list[Order]:
        return await newest_first(
            lambda before, before_id, limit: store.list_orders(
                account_id=args.account, status=status, before=before, before_id=before_id,
                limit=limit),
            args.limit)

    orders = with_store(config, read)
    tables.print_listing(
        orders, as_json=args.json, to_json=order_json, columns=COLUMNS,
        to_row=lambda o: [o.id, o.account_id, o.status.value,
                          ", ".join(i.value for i in o.identifiers), o.profile,
                          when(o.created_at), o.certificate_serial or "-"],
        empty="No orders.", whole=("ID", "ACCOUNT", "STATUS"))
    return 0
