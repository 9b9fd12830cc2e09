"""`acme-ca certs list | show | revoke | renew-early`: every certificate the CA signed,
by ACME or by `acme-ca sign-csr`, as the operator sees and acts on it.

`revoke` is the operator's revocation (RFC 5280 5.3.1 reasons by name): any
certificate, with no proof asked; a sign-csr certificate belongs to no account, so
over ACME only its key holder could revoke it. The running server sees the row change
and publishes a new CRL within seconds (RFC 5280 5; OCSP answers revoked at once).
`renew-early` marks certificates whose renewal information (ARI, RFC 9773) then
suggests a window in the past: ACME clients that read it renew them at their next
check. A serial is taken as `certs list` prints it or as openssl does
(``domain.models.serial_from_text``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cryptography import x509

from acme_ca.authority.renewal_info import cert_id_of, suggested_window
from acme_ca.authority.revocation import OPERATOR_REASONS, RevocationService, reason_name
from acme_ca.cli import certs_view as view
from acme_ca.cli.audit import audit
from acme_ca.cli.certs_args import parse_reason, parse_serial, parse_window
from acme_ca.cli.certs_bulk import run_bulk_revoke
from acme_ca.cli.certs_renew import run_renew_early
from acme_ca.cli.store_session import pages, with_store
from acme_ca.clock import SystemClock
from acme_ca.config import Config
from acme_ca.domain.models import (
    CertificateRecord,
    CertificateStatus,
    serial_hex,
)
from acme_ca.errors import ConfigError, NotFound
from acme_ca.pki import files
from acme_ca.pki.publication import Publication
from acme_ca.store.base import Store

SERIAL_HELP = "hex, as `certs list` or `openssl x509 -serial` prints it"


def add_parser(commands: Any) -> None:
    group = commands.add_parser(
        "certs", help="certificates: list, show, revoke, renew-early",
        description="The certificates the CA signed, by ACME or by sign-csr.")
    tools = group.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")
    listing = tools.add_parser(
        "list", help="list certificates, oldest first",
        description="List certificates, oldest first: serial, names, profile, notAfter, "
        "state (issued, expired, revoked, or reserved: a serial never signed) and account "
        "(- for sign-csr).")
    listing.add_argument("--expiring-within", default=None, metavar="DURATION",
                         help="only signed certificates not yet expired whose notAfter "
                         "is within DURATION from now, e.g. 7d or 12h")
    listing.add_argument("--revoked", action="store_true", help="only revoked ones")
    listing.add_argument("--limit", type=int, default=None, metavar="N",
                         help="at most N certificates (default: all)")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    listing.set_defaults(run=run_list)
    show = tools.add_parser("show", help="every field of one certificate",
                            description="Every field of one certificate and what its DER "
                            "says: subject, issuer, names, key type; its ARI CertID (RFC "
                            "9773) and suggested renewal window, early renewal, "
                            "replacement.")
    show.add_argument("serial", help=SERIAL_HELP)
    shown = show.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="one JSON object")
    shown.add_argument("--pem", action="store_true", help="print the certificate (PEM)")
    show.set_defaults(run=run_show)
    revoke = tools.add_parser(
        "revoke", help="revoke a certificate (ACME or sign-csr), or many",
        description="Revoke a certificate, or every unexpired one of an account and/or "
        "issued before a moment (after confirming their count). The running server puts "
        "them on the CRL within seconds.")
    revoke.add_argument("serial", nargs="?", default=None, help=SERIAL_HELP)
    revoke.add_argument("--reason", default="unspecified", metavar="NAME",
                        help="an RFC 5280 reason: " + ", ".join(OPERATOR_REASONS))
    revoke.add_argument("--account", default=None, metavar="ID",
                        help="instead of a serial: every unexpired certificate of account "
                        "ID")
    revoke.add_argument("--issued-before", default=None, metavar="DATE",
                        help="instead of a serial: every unexpired certificate issued "
                        "before DATE (RFC 3339; with --account, of that account)")
    revoke.add_argument("--dry-run", action="store_true",
                        help="with --account/--issued-before: list them, change nothing")
    revoke.add_argument("--confirm", type=int, default=None, metavar="N",
                        help="with --account/--issued-before: their count, which must "
                        "match (asked for on a terminal)")
    revoke.set_defaults(run=run_revoke)
    early = tools.add_parser(
        "renew-early", help="have ACME clients renew certificates now (ARI)",
        description="Mark certificates for early renewal: their renewal information "
        "(ARI, RFC 9773) suggests a window in the past, and clients that read it (certbot "
        "4.1+, recent lego, Caddy 2.8+) renew them at their next check. Give a serial, or "
        "--issued-before DATE (an intermediate rotated, a key compromised).")
    early.add_argument("serial", nargs="?", default=None, help=SERIAL_HELP)
    early.add_argument("--issued-before", default=None, metavar="DATE",
                       help="every unexpired certificate issued before DATE: RFC 3339, "
                       "2026-12-01 (midnight UTC) or 2026-12-01T12:00:00Z; not in the "
                       "future")
    early.add_argument("--dry-run", action="store_true",
                       help="with --issued-before: only say how many would be marked")
    early.set_defaults(run=run_renew_early)


def run_revoke(config: Config, args: argparse.Namespace) -> int:
    many = args.account is not None or args.issued_before is not None
    if (args.serial is None) != many:
        raise ConfigError("revoke: give either a SERIAL or --account ID and/or "
                          "--issued-before DATE")
    if many:
        return run_bulk_revoke(config, args)
    if args.dry_run or args.confirm is not None:
        raise ConfigError("revoke: --dry-run and --confirm go with --account or "
                          "--issued-before")
    serial, reason = parse_serial(args.serial), parse_reason(args.reason)
    record = with_store(config, lambda store: RevocationService(store, SystemClock())
                        .revoke_by_operator(serial, reason))
    audit(config, f"revoked the certificate {record.serial} "
          f"({view.names(record)}), reason {reason_name(reason)}")
    crl = Publication(config.revocation.base_url).crl_url(record.issuer)
    print(f"Revoked the certificate {record.serial} ({view.names(record)}), reason "
          f"{reason_name(reason)}. The running server rebuilds the CRL within seconds: {crl}")
    own = own_certificate(config, record.serial)
    if own is not None:
        print(f"It is the server's own {own}: the running server replaces it with a new "
              "one within a minute (or at its next start).")
    return 0


def own_certificate(config: Config, serial: str) -> str | None:
    """What the certificate ``serial`` is to the server, if it is one of its own files:
    its TLS certificate (data_dir/tls/server.crt) or an OCSP responder's (data_dir/ocsp/
    *.crt), which it replaces once revoked (``server_tls``, ``ocsp_responders``)."""
    data = config.server.data_dir
    own = [(data / "tls" / "server.crt", "TLS certificate")]
    own += [(path, f"OCSP responder certificate ({path})")
            for path in sorted((data / "ocsp").glob("*.crt"))]
    for path, what in own:
        try:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            continue
        if serial_hex(certificate.serial_number) == serial:
            return what
    return None


def run_list(config: Config, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit: {args.limit} is not a positive number")
    window = (None if args.expiring_within is None
              else parse_window("--expiring-within", args.expiring_within))
    now = SystemClock().now()
    status = CertificateStatus.REVOKED if args.revoked else None

    async def read(store: Store) -> list[CertificateRecord]:
        """Every record asked for; with ``window``, signed ones only whose notAfter is
        in (now, now+window]."""
        expiring = None if window is None else (now, now + window)
        found: list[CertificateRecord] = []
        async for record in pages(store, status=status, expiring=expiring):
            if expiring is not None and record.status is CertificateStatus.RESERVED:
                continue
            found.append(record)
            if len(found) == args.limit:
                break
        return found

    records = with_store(config, read)
    if args.json:
        sys.stdout.write(json.dumps([view.record_json(r, now) for r in records], indent=2)
                         + "\n")
    else:
        view.print_table(records, now)
    return 0


def run_show(config: Config, args: argparse.Namespace) -> int:
    serial = parse_serial(args.serial)
    now = SystemClock().now()

    async def read(store: Store) -> tuple[CertificateRecord, str | None]:
        record = await _certificate(store, serial)
        return record, await _replacement(store, record.replaced_by)

    record, replacement = with_store(config, read)
    if args.pem:
        if record.der is None:
            raise ConfigError(f"the serial {serial} was reserved but never signed: there is "
                              "no certificate to print")
        sys.stdout.buffer.write(files.pem(x509.load_der_x509_certificate(record.der)))
        return 0
    fields = view.record_json(record, now)
    fields["replaced_by_certificate"] = replacement
    certificate = None if record.der is None else x509.load_der_x509_certificate(record.der)
    fields.update(view.certificate_json(certificate))  # null for a reserved serial
    fields.update(_renewal_info(record, certificate))
    if args.json:
        sys.stdout.write(json.dumps(fields, indent=2) + "\n")
    else:
        view.print_fields(fields)
    return 0


def _renewal_info(record: CertificateRecord, certificate: x509.Certificate | None
                  ) -> dict[str, Any]:
    """What `certs show` tells of the certificate's renewal information (RFC 9773): its
    CertID (4.1, the renewalInfo URL's last part and an order's "replaces"), the window
    the server suggests now (4.2: in the past once marked or revoked), the mark; the
    same keys, null, for a serial reserved and never signed."""
    mark = {"renew_early": record.renew_early_at is not None}
    if certificate is None:
        return {"ari_cert_id": None, "renewal_window_start": None,
                "renewal_window_end": None, **mark}
    try:
        cert_id: str | None = cert_id_of(certificate)
    except ValueError:  # no AKI keyIdentifier: not one this CA signs today
        cert_id = None
    window = suggested_window(record)
    return {"ari_cert_id": cert_id, "renewal_window_start": view.iso(window.start),
            "renewal_window_end": view.iso(window.end), **mark}


async def _certificate(store: Store, serial: str) -> CertificateRecord:
    try:
        return await store.get_certificate(serial)
    except NotFound:
        raise NotFound(f"no certificate has the serial {serial}") from None


async def _replacement(store: Store, order_id: str | None) -> str | None:
    """The serial of the certificate of the order that replaced one (RFC 9773 5)."""
    if order_id is None:
        return None
    try:
        return (await store.get_order(order_id)).certificate_serial
    except NotFound:  # the order is gone (retention): its id is all there is
        return None


