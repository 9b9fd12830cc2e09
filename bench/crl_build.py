"""Time ``pki.crl.build_crl`` for N revoked entries (docs/performance.md, "CRLs (issue 12)").

    .venv/bin/python -m bench.crl_build 80000
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_ca.pki.crl import CrlEntry, CrlSigner, build_crl
from acme_ca.pki.signer import FileSigner


def main(count: int) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench intermediate")])
    now = datetime.now(UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )
    signer = CrlSigner(cert, "00" * 32, FileSigner(key))
    entries = [CrlEntry(serial, now, serial % 2) for serial in range(1, count + 1)]
    start = time.perf_counter()
    der = build_crl(signer, number=1, this_update=now, next_update=now + timedelta(days=1),
                    entries=entries, distribution_point="http://ca.example/crl/x.crl")
    took = time.perf_counter() - start
    print(f"{count} entries: {took:.2f} s, {len(der)} bytes")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 80_000)
