"""The server's own TLS certificate: issued from the intermediate, reused while fresh,
renewed in place when a third of its life is left (issue: "renews it before it expires,
with no restart")."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from acme_ca.authority.revocation import RevocationService
from acme_ca.authority.server_tls import TLS_VALIDITY, ServerTls
from acme_ca.clock import FakeClock
from acme_ca.domain.models import serial_hex
from acme_ca.errors import PkiError
from acme_ca.pki.issuer import Issuer
from acme_ca.store import open_store
from acme_ca.store.base import Store


async def _setup(make_hierarchy: Callable[..., Any], tmp_path: Path
                 ) -> tuple[FakeClock, Issuer, Store]:
    """A clock at the hierarchy's time, its intermediate, a SQLite store."""
    hierarchy = make_hierarchy("pki", permitted_domains=None)
    clock = FakeClock(hierarchy.now)
    paths = hierarchy.paths
    issuer = Issuer.load(paths.intermediate_cert, paths.intermediate_key, paths.chain, None,
                         clock.now())
    return clock, issuer, await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock)



async def test_issued_reused_then_renewed_in_place(
        make_hierarchy: Callable[..., Any], tmp_path: Path) -> None:
    clock, issuer, store = await _setup(make_hierarchy, tmp_path)

    def server_tls() -> ServerTls:
        return ServerTls(store=store, issuer=lambda: issuer, dns_names=("ca.bluerobin.local",),
                         ip_addresses=(ipaddress.ip_address("127.0.0.1"),),
                         directory=tmp_path / "tls", clock=clock)

    try:
        first = server_tls()
        context = await first.start()
        assert first.certificate is not None
        leaf = first.certificate
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["ca.bluerobin.local"]
        leaf.verify_directly_issued_by(issuer.certificate)
        assert len(await store.list_certificates()) == 1  # recorded like any other

        second = server_tls()  # a restart while the certificate is fresh reuses it
        await second.start()
        assert second.certificate == leaf

        clock.advance(TLS_VALIDITY * 2 / 3 + timedelta(minutes=1))
        assert second.seconds_until_due() == 1.0  # due: the renewal loop wakes at once
        await first.renew()
        assert first.certificate is not None and first.certificate != leaf
        assert first.context is context  # the same SSLContext: new connections get it
        assert len(await store.list_certificates()) == 2
    finally:
        await store.close()


async def test_a_name_outside_the_name_constraints_stops_the_start(
        make_hierarchy: Callable[..., Any], tmp_path: Path) -> None:
    """RFC 5280 4.2.1.10: a server certificate for a name the intermediate may not certify
    would not verify; the server refuses to start with one line instead."""
    hierarchy = make_hierarchy("pki")  # permits bluerobin.local only
    clock = FakeClock(hierarchy.now)
    paths = hierarchy.paths
    issuer = Issuer.load(paths.intermediate_cert, paths.intermediate_key, paths.chain, None,
                         clock.now())
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock=clock)
    try:
        tls = ServerTls(store=store, issuer=lambda: issuer, dns_names=("ca.example.com",),
                        ip_addresses=(), directory=tmp_path / "tls", clock=clock)
        with pytest.raises(PkiError, match="outside the intermediate's name constraints"):
            await tls.start()
        assert await store.list_certificates() == []
    finally:
        await store.close()


async def test_a_revoked_server_certificate_is_replaced_at_start_and_while_running(
        make_hierarchy: Callable[..., Any], tmp_path: Path) -> None:
    """RFC 5280 5: a certificate the operator revoked is one relying parties stop
    trusting; the server stops presenting its own, at the next start and, while it runs,
    at the next round of the renewal loop (as for a revoked OCSP responder)."""
    clock, issuer, store = await _setup(make_hierarchy, tmp_path)
    revocation = RevocationService(store, clock)

    def server_tls() -> ServerTls:
        return ServerTls(store=store, issuer=lambda: issuer, dns_names=("ca.bluerobin.local",),
                         ip_addresses=(), directory=tmp_path / "tls", clock=clock)

    try:
        running = server_tls()
        await running.start()
        first = running.certificate
        assert first is not None
        await revocation.revoke_by_operator(serial_hex(first.serial_number), 1)

        restarted = server_tls()  # a restart: not the revoked one
        await restarted.start()
        assert restarted.certificate is not None and restarted.certificate != first
        on_disk = x509.load_pem_x509_certificate((tmp_path / "tls" / "server.crt").read_bytes())
        assert on_disk == restarted.certificate

        second = restarted.certificate
        await revocation.revoke_by_operator(serial_hex(second.serial_number), 1)
        loop = asyncio.create_task(restarted.run_renewals(every=0.01))
        try:
            for _ in range(500):
                if restarted.certificate != second:
                    break
                await asyncio.sleep(0.01)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
        assert restarted.certificate not in (first, second)
    finally:
        await store.close()
