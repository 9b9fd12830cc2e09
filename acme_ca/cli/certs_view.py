"""What `acme-ca certs list | show` print: a certificate record as JSON, as a row of the
operator's table (rich; plain text when standard output is no terminal), and what its
DER says (subject, issuer, names, key).

Every time is UTC: RFC 3339 in JSON, "YYYY-MM-DD HH:MM UTC" in tables. Text from the
store or the certificate (names, subjects) is printed as it is, never as rich markup,
its control characters as \\xNN (``printable``): a name the CA signed must not drive
the operator's terminal. On a narrow terminal SERIAL and STATUS are never cut (a serial
pasted from the table must find its certificate); NAMES wraps.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from acme_ca.authority.revocation import reason_name
from acme_ca.domain.models import CertificateRecord, CertificateStatus

COLUMNS = ("SERIAL", "NAMES", "PROFILE", "NOT AFTER", "STATUS", "ACCOUNT")
_WHOLE = ("SERIAL", "STATUS")  # never cut nor wrapped: the others wrap or fold
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1


def printable(text: str) -> str:
    """``text`` with each control character (C0, DEL, C1: ESC, OSC, CSI...) as \\xNN."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


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


def certificate_json(certificate: x509.Certificate | None) -> dict[str, Any]:
    """What the signed certificate itself says; the same keys, null, for none (a serial
    reserved and never signed)."""
    if certificate is None:
        return dict.fromkeys(("subject", "issuer", "subject_alternative_names", "key_type"))
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


def names(record: CertificateRecord) -> str:
    """The record's names, comma-separated, printable (what `revoke` and `renew-early`
    say they changed)."""
    return printable(", ".join(record.names))


def print_table(records: Sequence[CertificateRecord], now: datetime) -> None:
    if not records:
        sys.stdout.write("No certificates.\n")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for column in COLUMNS:
        whole = column in _WHOLE
        table.add_column(column, no_wrap=whole, overflow="fold",
                         min_width=_widest(records, now, column) if whole else None,
                         ratio=1 if column == "NAMES" else None)
    for record in records:
        table.add_row(*(Text(cell) for cell in _cells(record, now)))
    emit(table)


def emit(table: Table) -> None:
    """Print ``table`` on standard output (``console``); off a terminal, each line
    without the padding rich leaves at its end."""
    out = console()
    if out.is_terminal:
        out.print(table)
        return
    with out.capture() as captured:
        out.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _cells(record: CertificateRecord, now: datetime) -> tuple[str, ...]:
    """The row's text, printable: plain text for rich (``Text``), never markup."""
    return tuple(printable(cell) for cell in (
        record.serial, ", ".join(record.names), record.profile, when(record.not_after),
        state(record, now), record.account_id or "-"))


def _widest(records: Sequence[CertificateRecord], now: datetime, column: str) -> int:
    index = COLUMNS.index(column)
    return max(len(column), *(len(_cells(r, now)[index]) for r in records))


def print_fields(fields: dict[str, Any]) -> None:
    """`certs show`: one "name: value" line per field, lists joined by commas, control
    characters as \\xNN."""
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        shown = printable("-" if value is None else str(value))
        sys.stdout.write(f"{name.replace('_', ' '):<{width}}  {shown}\n")
