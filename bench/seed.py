"""Fill a CA database with history, fast: accounts, orders with their authorizations and
challenges, and issued certificates, so that a benchmark can show that the cost of an
issuance does not grow with the size of the database.

    python -m bench seed --db acme-ca-data/acme-ca.db --certificates 100000 --orders 300000

Rows go in through the store's own bulk insert (one transaction per batch), so they
are what the server itself would have written: times spread over the last 90 days,
every order with one authorization and three challenges, one order in three valid
with its certificate, the rest expired or invalid. On a terminal a bar on standard
error counts the orders written (``acme_ca.cli.progress``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from acme_ca.cli.progress import progress
from acme_ca.domain.models import (
    Account,
    AccountStatus,
    Authorization,
    AuthorizationStatus,
    CertificateRecord,
    CertificateStatus,
    Challenge,
    ChallengeStatus,
    Identifier,
    Order,
    OrderStatus,
    serial_hex,
)
from acme_ca.pki.serials import random_serial
from acme_ca.store.sqlite import SqliteStore

BATCH = 10_000
HISTORY = timedelta(days=90)


def template_der() -> bytes:
    """One real certificate's DER, stored for every seeded certificate (its size matters,
    its content does not: nothing reads it unless it is downloaded)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seed.bluerobin.local")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(random_serial())
            .not_valid_before(now).not_valid_after(now + timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("seed.bluerobin.local")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.DER)


def seed_account(i: int, now: datetime) -> Account:
    thumbprint = hashlib.sha256(f"seed-account-{i}".encode()).hexdigest()
    jwk = json.dumps({"kty": "EC", "crv": "P-256", "x": thumbprint[:43], "y": thumbprint[21:]})
    return Account(id=f"seed-{i}", status=AccountStatus.VALID, jwk=jwk, thumbprint=thumbprint,
                   contact=(), terms_agreed=True, created_at=now - HISTORY)


def seed_batch(start: int, count: int, total: int, accounts: int, certificates: int,
               der: bytes, issuer: str, now: datetime) -> tuple[list[CertificateRecord],
                                                      list[Authorization], list[Order]]:
    records: list[CertificateRecord] = []
    authzs: list[Authorization] = []
    orders: list[Order] = []
    for i in range(start, start + count):
        created = now - HISTORY + HISTORY * (i / total)
        account_id = f"seed-{i % accounts}"
        identifier = Identifier("dns", f"h{i}.seed.bluerobin.local")
        authz_id = f"sa{i}"
        issued = i < certificates
        challenges = tuple(
            Challenge(id=f"sc{i}-{n}", authorization_id=authz_id, type=kind,
                      token=secrets.token_urlsafe(32),
                      status=ChallengeStatus.VALID if issued and n == 0
                      else ChallengeStatus.PENDING,
                      validated_at=created if issued and n == 0 else None)
            for n, kind in enumerate(("http-01", "dns-01", "tls-alpn-01")))
        authzs.append(Authorization(
            id=authz_id, account_id=account_id, identifier=identifier,
            status=AuthorizationStatus.VALID if issued else AuthorizationStatus.PENDING,
            expires=created + timedelta(days=1), created_at=created, challenges=challenges))
        serial = None
        if issued:
            serial = serial_hex(random_serial())
            records.append(CertificateRecord(
                serial=serial, issuer=issuer, names=(identifier.value,), profile="server",
                not_before=created, not_after=created + timedelta(days=7), created_at=created,
                status=CertificateStatus.ISSUED, der=der, account_id=account_id,
                order_id=f"so{i}"))
        orders.append(Order(
            id=f"so{i}", account_id=account_id,
            status=OrderStatus.VALID if issued else OrderStatus.INVALID,
            identifiers=(identifier,), authorization_ids=(authz_id,),
            expires=created + timedelta(days=7), created_at=created,
            certificate_serial=serial))
    return records, authzs, orders


async def seed(db: str, *, orders: int, certificates: int, accounts: int) -> float:
    if certificates > orders:
        raise SystemExit("bench seed: --certificates cannot exceed --orders (each comes "
                         "from an order)")
    started = time.perf_counter()
    store = await SqliteStore.open(db)
    now = datetime.now(UTC)
    der = template_der()
    issuer = hashlib.sha256(b"seed issuer").hexdigest()
    try:
        await store.bulk_insert(accounts=[seed_account(i, now) for i in range(accounts)])
        with progress("Seeding orders", orders) as bar:
            for start in range(0, orders, BATCH):
                records, authzs, batch = seed_batch(start, min(BATCH, orders - start),
                                                    orders, accounts, certificates, der,
                                                    issuer, now)
                await store.bulk_insert(certificates=records, authorizations=authzs,
                                        orders=batch)
                bar.advance(len(batch))
    finally:
        await store.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench seed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="the SQLite file (created if missing)")
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--certificates", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    args = parser.parse_args(argv)
    took = asyncio.run(seed(args.db, orders=args.orders, certificates=args.certificates,
                            accounts=args.accounts))
    print(f"seeded {args.db}: {args.accounts} accounts, {args.orders} orders, "
          f"{args.certificates} certificates in {took:.1f} s")
    return 0
