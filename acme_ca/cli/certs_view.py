"""What `acme-ca certs list | show` print: a certificate record as JSON, as a row of the
operator's table (rich; plain text when standard output is no terminal), and what its
DER says (subject, issuer, names, key).

Every time is UTC: RFC 3339 in JSON, "YYYY-MM-DD HH:MM UTC" in tables.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from rich import box
from rich.console import Console
from rich.table import Table

from acme_ca.authority.revocation import reason_name
from acme_ca.domain.models import CertificateRecord, CertificateStatus

COLUMNS = ("SERIAL", "NAMES", "PROFILE", "NOT AFTER", "STATUS", "ACCOUNT")


def state(record: CertificateRecord, now: datetime) -> str:
    """reserved, issued, expired (issued, past its notAfter) or revoked."""
    if record.status is CertificateStatus.ISSUED and record.not_after <= now:
        return "expired"
    return record.status.value


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def record_json(record: CertificateRecord, now: datetime) -> dict[str, Any]:
    """Every field of the record but its DER (`certs show --pem` prints that)."""
    return {
        "serial": record.serial, "state": state(record, now), "status": record.status.value,
        "names": list(record.names), "profile": record.profile,
        "issuer_fingerprint": record.issuer, "not_before": iso(record.not_before),
        "not_after": iso(record.not_after), "created_at": iso(record.created_at),
        "account_id": record.account_id, "order_id": record.order_id,
        "revoked_at": iso(record.revoked_at),
        "revocation_reason": reason_name(record.revocation_reason),
        "renew_early_at": iso(record.renew_early_at), "replaced_by": record.replaced_by,
    }


def certificate_json(certificate: x509.Certificate) -> dict[str, Any]:
    """What the signed certificate itself says."""
    try:
        sans = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
        names = [str(n.value) for n in sans]
    except x509.ExtensionNotFound:
        names = []
    return {"subject": certificate.subject.rfc4514_string(),
            "issuer": certificate.issuer.rfc4514_string(),
            "subject_alternative_names": names,
            "key_type": key_type(certificate.public_key())}


def key_type(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ECDSA P-256", "secp384r1": "ECDSA P-384",
                "secp521r1": "ECDSA P-521"}.get(key.curve.name, f"ECDSA {key.curve.name}")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


def console() -> Console:
    """Standard output: colours and the terminal's width on a terminal; otherwise plain
    text, never wrapped (scripts and `grep` read whole lines)."""
    if sys.stdout.isatty():
        return Console(file=sys.stdout, highlight=False)
    return Console(file=sys.stdout, highlight=False, no_color=True, width=10_000,
                   color_system=None)


def print_table(records: Sequence[CertificateRecord], now: datetime) -> None:
    if not records:
        sys.stdout.write("No certificates.\n")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in COLUMNS:
        table.add_column(column, no_wrap=column != "NAMES", overflow="fold")
    for record in records:
        table.add_row(record.serial, ", ".join(record.names), record.profile,
                      when(record.not_after), state(record, now), record.account_id or "-")
    out = console()
    if out.is_terminal:
        out.print(table)
        return
    with out.capture() as captured:
        out.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def print_fields(fields: dict[str, Any]) -> None:
    """`certs show`: one "name: value" line per field, lists joined by commas."""
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        sys.stdout.write(f"{name.replace('_', ' '):<{width}}  "
                         f"{'-' if value is None else value}\n")
