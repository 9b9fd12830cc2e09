"""`acme-ca eab create | list | revoke`: the External Account Binding keys (RFC 8555
7.3.4) an operator hands to a team, and what the account each binds may get.

`create` prints the key id and the HMAC key once (base64url, as certbot's
--eab-hmac-key and lego's --hmac take it); the store keeps the HMAC key, never shown
again. `list` shows every key and the account it bound, never an HMAC key. A table is
plain columns, no dependency; --json for scripts, and --output FILE writes that JSON to
a file only its owner reads (mode 0600, atomically), as a secret should be handed over.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from acme_ca.authority import eab
from acme_ca.authority.audit import Auditor
from acme_ca.authority.profiles import Catalog
from acme_ca.cli.store_session import with_store
from acme_ca.clock import SystemClock
from acme_ca.config import Config, parse_duration
from acme_ca.config_policy import check_inside_policy, parse_limit_setting
from acme_ca.config_values import NO_FILES
from acme_ca.config_values import domains as domain_list
from acme_ca.domain.models import EabKey
from acme_ca.errors import ConfigError, PkiError
from acme_ca.pki.files import PRIVATE_FILE, write_file
from acme_ca.store.base import Store


def add_parser(commands: Any) -> None:
    group = commands.add_parser(
        "eab", help="External Account Binding keys: create, list, revoke",
        description="External Account Binding keys (RFC 8555 7.3.4): a team registers "
        "its ACME account with one, and the account gets only the key's profiles and "
        "domains. [acme] eab_required = true makes a key necessary.")
    tools = group.add_subparsers(dest="eab_command", required=True, metavar="COMMAND")
    create = tools.add_parser(
        "create", help="create a key; print its key id and HMAC key once",
        description="Create a key and print its key id and HMAC key, once: give both to "
        "the team (certbot --eab-kid/--eab-hmac-key, lego --eab --kid/--hmac).")
    create.add_argument("--label", required=True, help="who the key is for (a team)")
    create.add_argument("--profiles", type=_names, default=(), metavar="P,...",
                        help="the profiles its account may use (default: every one)")
    create.add_argument("--domains", type=_names, default=(), metavar="D,...",
                        help="the names its account may get: these domains and names "
                        "under them, inside [policy] allowed_domains (default: those)")
    create.add_argument("--expires", type=_duration, default=None, metavar="DURATION",
                        help="the key binds no account after this long, e.g. 30d "
                        "(default: never); an account it bound keeps working")
    create.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="override a [limits] limit for its account (repeatable): "
                        "a rate COUNT/DURATION or unlimited, e.g. "
                        "new_orders_per_account=50/1h, except "
                        "pending_authorizations_per_account, a plain count at once, e.g. "
                        "pending_authorizations_per_account=100")
    create.add_argument("--json", action="store_true",
                        help='print {"kid": ..., "hmac_key": ...}')
    create.add_argument("--output", type=Path, default=None, metavar="FILE",
                        help="write that JSON to FILE instead, readable by its owner only "
                        "(mode 0600), never over an existing file")
    create.set_defaults(run=run_create)
    listing = tools.add_parser("list", help="list the keys (never an HMAC key)")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    listing.set_defaults(run=run_list)
    revoke = tools.add_parser(
        "revoke", help="revoke a key: it binds no account, and its account opens no order",
        description="Revoke a key: no account can be registered with it, and the account "
        "it bound may open no new order. Certificates already issued stay valid.")
    revoke.add_argument("kid", help="the key id")
    revoke.set_defaults(run=run_revoke)


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list")
    return names


def _duration(text: str) -> Any:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_create(config: Config, args: argparse.Namespace) -> int:
    grants = {"profiles": _check_profiles(config, args.profiles),
              "domains": _check_domains(config, args.domains),
              "limits": _check_limits(args.limit)}
    try:
        key = eab.new_key(args.label, SystemClock().now(), valid_for=args.expires, **grants)
    except ValueError as exc:
        raise ConfigError(f"--label: {exc}") from None
    if args.output is not None and args.output.exists():  # before a key no one gets
        raise ConfigError(f"--output: {args.output} already exists; refusing to overwrite it")
    key = with_store(config, lambda store: _keys(store).create(key))
    shown = json.dumps({"kid": key.kid, "hmac_key": eab.hmac_key_text(key)})
    if args.output is not None:
        try:
            write_file(args.output, shown.encode() + b"\n", mode=PRIVATE_FILE, exclusive=True)
        except PkiError as exc:
            raise ConfigError(f"--output: {exc}; the key {key.kid} was made: revoke it "
                              "(acme-ca eab revoke) and create another") from None
        print(f"Wrote the external account key {key.kid} for {key.label} to {args.output} "
              "(mode 0600): give the file to the team; the HMAC key is not shown again.")
        return 0
    if args.json:
        print(shown)
        return 0
    print(f"Created the external account key for {key.label}. Give the team both lines; "
          "the HMAC key is not shown again.")
    print(f"kid:      {key.kid}")
    print(f"hmac key: {eab.hmac_key_text(key)}")
    print(f"grants:   {_grants(key)}")
    return 0


def run_list(config: Config, args: argparse.Namespace) -> int:
    keys = with_store(config, lambda store: store.list_eab_keys())
    now = SystemClock().now()
    if args.json:
        print(json.dumps([_key_json(k, now) for k in keys], indent=2))
        return 0
    rows = [("KID", "LABEL", "STATE", "ACCOUNT", "EXPIRES", "GRANTS")]
    rows += [(k.kid, k.label, eab.state(k, now), k.account_id or "-", _when(k.expires),
              _grants(k)) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
              + "  " + row[-1])
    return 0


def run_revoke(config: Config, args: argparse.Namespace) -> int:
    key = with_store(config, lambda store: _keys(store).revoke(args.kid))
    bound = f"; account {key.account_id} opens no new order" if key.account_id else ""
    print(f"Revoked the external account key {key.kid} ({key.label}){bound}.")
    return 0


def _keys(store: Store) -> eab.EabKeys:
    """The keys, with each change recorded in the audit log (actor cli:<user>)."""
    clock = SystemClock()
    return eab.EabKeys(store, clock, Auditor(store, clock))


def _check_profiles(config: Config, names: tuple[str, ...]) -> tuple[str, ...]:
    offered = Catalog.from_config(config).offered()
    for name in names:
        if name not in offered:
            raise ConfigError(f"--profiles: {name!r} is not a profile in use "
                              f"(profiles: {', '.join(offered)})")
    return tuple(dict.fromkeys(names))


def _check_domains(config: Config, names: tuple[str, ...]) -> tuple[str, ...]:
    if not names:
        return ()
    try:
        domains = domain_list(NO_FILES, list(names))
    except ValueError as exc:
        raise ConfigError(f"--domains: {exc}") from None
    check_inside_policy(domains, config.policy.allowed_domains, "--domains")
    return tuple(dict.fromkeys(domains))


def _check_limits(items: list[str]) -> tuple[tuple[str, str], ...]:
    limits: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        try:
            if not sep:
                raise ValueError("expected NAME=VALUE")
            parse_limit_setting(name, value)
        except ValueError as exc:
            raise ConfigError(f"--limit {item!r}: {exc}") from None
        limits[name] = value
    return tuple(sorted(limits.items()))


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _grants(key: EabKey) -> str:
    parts = [f"profiles {','.join(key.profiles) or 'all'}",
             f"domains {','.join(key.domains) or 'all allowed'}"]
    parts += [f"{name}={value}" for name, value in key.limits]
    return "; ".join(parts)


def _key_json(key: EabKey, now: datetime) -> dict[str, Any]:
    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat()

    return {"kid": key.kid, "label": key.label, "state": eab.state(key, now),
            "account_id": key.account_id, "profiles": list(key.profiles),
            "domains": list(key.domains), "limits": dict(key.limits),
            "created_at": iso(key.created_at), "expires": iso(key.expires),
            "revoked_at": iso(key.revoked_at)}
