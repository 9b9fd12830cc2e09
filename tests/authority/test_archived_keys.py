"""Archived intermediate keys are destroyed once no certificate they signed can be valid.

A CA key is needed after its replacement only to sign CRLs for the certificates it
issued, and a CRL need not list a certificate once it has expired (RFC 5280 3.3,
5.1.2.6); so the key is kept that long and no longer, and its certificate for good.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from acme_ca.authority import issuance
from acme_ca.authority.archived_keys import ArchivedKeys
from acme_ca.clock import FakeClock
from acme_ca.pki import files
from acme_ca.pki.archive import archive_dir, load_archive
from acme_ca.pki.hierarchy import fingerprint, renew_intermediate
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import LeafRequest
from acme_ca.store import Store
from tests.conftest import ROOT_PASSPHRASE, Hierarchy

DAY = timedelta(days=1)
RETENTION = timedelta(days=90)


def load_issuer(hierarchy: Hierarchy) -> Issuer:
    p = hierarchy.paths
    return Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain, None, hierarchy.now)


def renew(hierarchy: Hierarchy, keep_old_key_until: datetime) -> Path:
    """`intermediate renew`'s pki step; the archived key's path."""
    old = files.load_certificate(hierarchy.paths.intermediate_cert)
    renew_intermediate(hierarchy.paths, root_passphrase=ROOT_PASSPHRASE,
                       intermediate_passphrase=None, now=hierarchy.now,
                       keep_old_key_until=keep_old_key_until)
    archive = archive_dir(hierarchy.paths.intermediate_cert)
    return archive / f"intermediate-ca.{old.serial_number:x}.key"


def keeper(hierarchy: Hierarchy, store: Store, clock: FakeClock,
           issuer: Callable[[], Issuer] | None = None) -> ArchivedKeys:
    current = load_issuer(hierarchy)
    return ArchivedKeys(archive_dir(hierarchy.paths.intermediate_cert), store, clock,
                        issuer or (lambda: current), RETENTION)


async def test_a_key_past_its_deadline_is_destroyed_one_before_it_is_kept(
        hierarchy: Hierarchy, store: Store, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    first = renew(hierarchy, hierarchy.now + DAY)
    second = renew(hierarchy, hierarchy.now + 10 * DAY)
    witness = tmp_path / "witness"  # a second name for the first key's bytes on disk
    os.link(first, witness)
    original = witness.read_bytes()
    clock = FakeClock(hierarchy.now + DAY - timedelta(seconds=1))
    keys = keeper(hierarchy, store, clock)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await keys.sweep() == []
    assert first.exists() and second.exists()
    assert f"{first} is kept until" in caplog.text

    clock.advance(timedelta(seconds=2))
    assert await keys.sweep() == [first]
    assert not first.exists() and second.exists()
    assert witness.read_bytes() != original, "the key's bytes were not overwritten"
    assert len(witness.read_bytes()) == len(original)
    assert f"destroyed {first}" in caplog.text
    # The certificates stay: public, and the chain of what the old intermediates signed.
    archive = load_archive(archive_dir(hierarchy.paths.intermediate_cert))
    archived = {a.key_path: a for a in archive}
    assert sorted(archived) == sorted([first, second])
    assert archived[first].certificate == hierarchy.intermediate
    assert archived[first].cert_path.exists()
    assert load_issuer(hierarchy).chains_for(fingerprint(hierarchy.intermediate)) == (
        (hierarchy.intermediate,),
    )


async def test_a_certificate_that_ends_later_keeps_the_key(
        hierarchy: Hierarchy, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A client-chosen validity window (RFC 8555 7.1.3 notBefore/notAfter), or a server
    that kept signing with the old intermediate until it was reloaded, can outlast the
    policy bound: the store's records keep the key until the last one ends."""
    old = load_issuer(hierarchy)
    leaf_ends = hierarchy.now + 30 * DAY
    request = LeafRequest(ec.generate_private_key(ec.SECP256R1()).public_key(),
                          ("late.bluerobin.local",), (), hierarchy.now + 20 * DAY, leaf_ends)
    await issuance.issue(store, old, request, hierarchy.now)
    key = renew(hierarchy, hierarchy.now + DAY)
    clock = FakeClock(hierarchy.now + 2 * DAY)
    keys = keeper(hierarchy, store, clock)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await keys.sweep() == []
    assert key.exists()
    assert f"{key} is kept until {leaf_ends:%Y-%m-%d %H:%M}" in caplog.text
    clock.advance(leaf_ends - clock.now())
    assert await keys.sweep() == [key]


async def test_the_key_the_server_still_signs_with_is_kept(
        hierarchy: Hierarchy, store: Store) -> None:
    """Renewed but not yet reloaded (no SIGHUP): this server still signs with the archived
    intermediate, so its key stays whatever the deadline says."""
    still_current = load_issuer(hierarchy)
    key = renew(hierarchy, hierarchy.now + DAY)
    keys = keeper(hierarchy, store, FakeClock(hierarchy.now + 2 * DAY), lambda: still_current)
    assert await keys.sweep() == []
    assert key.exists()


async def test_a_key_archived_without_a_deadline_goes_after_the_retention(
        hierarchy: Hierarchy, store: Store) -> None:
    """Archives written before deadlines were recorded: the key file's time (when renew
    wrote it) plus the retention."""
    key = renew(hierarchy, hierarchy.now + DAY)
    key.with_suffix(".key-destroy-after").unlink()
    written = hierarchy.now - RETENTION
    os.utime(key, (written.timestamp(), written.timestamp()))
    clock = FakeClock(hierarchy.now - timedelta(seconds=1))
    keys = keeper(hierarchy, store, clock)
    assert await keys.sweep() == []
    clock.advance(timedelta(seconds=1))
    assert await keys.sweep() == [key]
