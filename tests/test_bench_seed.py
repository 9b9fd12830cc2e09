"""The seeding command of the benchmark: what it writes is what the store reads back."""

from __future__ import annotations

from pathlib import Path

from acme_ca.domain.models import CertificateStatus, OrderStatus
from acme_ca.store.sqlite import SqliteStore
from bench.seed import seed


async def test_seeded_rows_read_back_through_the_store(tmp_path: Path) -> None:
    db = str(tmp_path / "seeded.db")
    await seed(db, orders=250, certificates=100, accounts=7)
    store = await SqliteStore.open(db)
    try:
        valid = await store.get_order("so5")
        assert valid.status is OrderStatus.VALID and valid.certificate_serial
        certificate = await store.get_certificate(valid.certificate_serial)
        assert certificate.status is CertificateStatus.ISSUED and certificate.der
        assert certificate.order_id == "so5"
        authz = await store.get_authorization(valid.authorization_ids[0])
        assert [c.type for c in authz.challenges] == ["http-01", "dns-01", "tls-alpn-01"]
        assert (await store.get_order("so200")).status is OrderStatus.INVALID
        assert len(await store.list_account_orders("seed-3", limit=100)) == len(range(3, 250, 7))
        assert len(await store.list_certificates(limit=1000)) == 100
    finally:
        await store.close()
