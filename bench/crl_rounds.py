"""Time the CRL publisher's rounds (``authority/crls.py``) over N revoked certificates
in a SQLite store (docs/performance.md, "CRLs (issue 12)"): the first round, which
reads every entry and builds and signs the CRL, then rounds that publish nothing (the
background job runs one every 2 s in the lease holder, on its event loop).

    .venv/bin/python -m bench.crl_rounds 80000
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_ca.authority.crls import CrlPublisher
from acme_ca.clock import FakeClock
from acme_ca.domain.models import CertificateRecord, CertificateStatus, serial_hex
from acme_ca.pki.crl import CrlSigner
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.publication import Publication
from acme_ca.pki.signer import FileSigner
from acme_ca.store.sqlite.store import SqliteStore

ISSUER = "ab" * 32
BATCH = 10_000
QUIET_ROUNDS = 5


class _Signer:
    """The part of an ``Issuer`` the publisher reads: one intermediate, no archive."""

    def __init__(self, signer: CrlSigner) -> None:
        self.fingerprint = signer.fingerprint
        self.earlier: dict[str, object] = {}
        self.unreadable: dict[str, str] = {}
        self._signer = signer

    def crl_signers(self) -> list[CrlSigner]:
        return [self._signer]


def _signer(now: datetime) -> CrlSigner:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench intermediate")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )
    return CrlSigner(cert, ISSUER, FileSigner(key))


def _revoked(start: int, count: int, now: datetime) -> list[CertificateRecord]:
    return [CertificateRecord(
        serial=serial_hex(1_000_000 + i), issuer=ISSUER, names=(f"h{i}.bench.local",),
        profile="server", not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=7), created_at=now - timedelta(days=1),
        status=CertificateStatus.REVOKED, der=b"\x00", revoked_at=now - timedelta(hours=1),
        revocation_reason=i % 2) for i in range(start, start + count)]


async def main(count: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now)
    with tempfile.TemporaryDirectory() as directory:
        store = await SqliteStore.open(Path(directory) / "bench.db", clock=clock)
        try:
            for start in range(0, count, BATCH):
                await store.bulk_insert(certificates=_revoked(start, min(BATCH, count - start),
                                                              now))
            issuer = cast(Issuer, _Signer(_signer(now)))
            publisher = CrlPublisher(store, clock, lambda: issuer,
                                     Publication("http://ca.example"), timedelta(hours=24),
                                     backdate=timedelta(minutes=1))
            started = time.perf_counter()
            assert await publisher.publish() == 1
            first = time.perf_counter() - started
            quiet = []
            for _ in range(QUIET_ROUNDS):
                clock.advance(timedelta(seconds=2))
                started = time.perf_counter()
                assert await publisher.publish() == 0
                quiet.append(time.perf_counter() - started)
        finally:
            await store.close()
    print(f"{count} revoked: first round {first:.2f} s; rounds publishing nothing: the "
          f"first {quiet[0] * 1000:.0f} ms, the next {QUIET_ROUNDS - 1} "
          f"{min(quiet[1:]) * 1000:.1f}-{max(quiet[1:]) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 80_000))
