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
from acme_ca.authority.archived_keys import SWEEP_EVERY, ArchivedKeys
from acme_ca.clock import FakeClock
from acme_ca.pki import files
from acme_ca.pki.archive import archive_dir, load_archive
from acme_ca.pki.hierarchy import fingerprint, renew_intermediate
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import load_key, same_key, write_key
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest, build_intermediate
from acme_ca.store import Store, open_store
from tests.conftest import ROOT_PASSPHRASE, Hierarchy, load_issuer

DAY = timedelta(days=1)
RETENTION = timedelta(days=90)
PASS = b"intermediate passphrase"


def renew(hierarchy: Hierarchy, keep_old_key_until: datetime) -> Path:
    """`intermediate renew`'s pki step; the archived key's path."""
    old = files.load_certificate(hierarchy.paths.intermediate_cert)
    renew_intermediate(hierarchy.paths, root_passphrase=ROOT_PASSPHRASE,
                       intermediate_passphrase=hierarchy.intermediate_passphrase,
                       now=hierarchy.now, keep_old_key_until=keep_old_key_until)
    archive = archive_dir(hierarchy.paths.intermediate_cert)
    return archive / f"intermediate-ca.{old.serial_number:x}.key"


async def sign_one(hierarchy: Hierarchy, store: Store, ends: datetime) -> None:
    """The current intermediate signs a leaf that ends at `ends`: the store knows it."""
    request = LeafRequest(ec.generate_private_key(ec.SECP256R1()).public_key(),
                          ("web.bluerobin.local",), (), ends - DAY, ends, SERVER_AUTH)
    await issuance.issue(store, load_issuer(hierarchy), request, hierarchy.now,
                         profile="server")


def keeper(hierarchy: Hierarchy, store: Store, clock: FakeClock,
           issuer: Callable[[], Issuer] | None = None,
           passphrase: bytes | None = None) -> ArchivedKeys:
    current = load_issuer(hierarchy)
    return ArchivedKeys(archive_dir(hierarchy.paths.intermediate_cert), store, clock,
                        issuer or (lambda: current), RETENTION,
                        passphrase=lambda: passphrase)


async def sweeps(keys: ArchivedKeys, clock: FakeClock) -> list[Path]:
    """What two sweeps, one sweep interval apart, destroy."""
    destroyed = await keys.sweep()
    clock.advance(SWEEP_EVERY)
    return destroyed + await keys.sweep()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def signs_with(hierarchy: Hierarchy, issuer: Issuer) -> bool:
    """Whether the live key file still holds the key of `issuer`'s certificate."""
    live = load_key(hierarchy.paths.intermediate_key, hierarchy.intermediate_passphrase)
    return same_key(live, issuer.certificate.public_key())  # type: ignore[arg-type]


async def test_a_key_past_its_deadline_is_destroyed_one_before_it_is_kept(
        hierarchy: Hierarchy, store: Store, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    await sign_one(hierarchy, store, hierarchy.now + DAY)
    first = renew(hierarchy, hierarchy.now + DAY)
    await sign_one(hierarchy, store, hierarchy.now + DAY)
    second = renew(hierarchy, hierarchy.now + 10 * DAY)
    witness = first.open("rb")  # the first key's bytes on disk, after the unlink too
    original = witness.read()
    clock = FakeClock(hierarchy.now + DAY - timedelta(seconds=1))
    keys = keeper(hierarchy, store, clock)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await keys.sweep() == []
    assert first.exists() and second.exists()
    assert f"{first} is kept until" in caplog.text

    clock.advance(timedelta(seconds=2))
    assert await sweeps(keys, clock) == [first]
    assert not first.exists() and second.exists()
    witness.seek(0)
    overwritten = witness.read()
    witness.close()
    assert overwritten != original, "the key's bytes were not overwritten"
    assert len(overwritten) == len(original)
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
                          ("late.bluerobin.local",), (), hierarchy.now + 20 * DAY, leaf_ends,
                          SERVER_AUTH)
    await issuance.issue(store, old, request, hierarchy.now, profile="server")
    key = renew(hierarchy, hierarchy.now + DAY)
    clock = FakeClock(hierarchy.now + 2 * DAY)
    keys = keeper(hierarchy, store, clock)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await keys.sweep() == []
    assert key.exists()
    assert f"{key} is kept until {leaf_ends:%Y-%m-%d %H:%M}" in caplog.text
    clock.advance(leaf_ends - clock.now())
    assert await sweeps(keys, clock) == [key]


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
    await sign_one(hierarchy, store, hierarchy.now - DAY)
    key = renew(hierarchy, hierarchy.now + DAY)
    key.with_suffix(".key-destroy-after").unlink()
    written = hierarchy.now - RETENTION
    os.utime(key, (written.timestamp(), written.timestamp()))
    clock = FakeClock(hierarchy.now - timedelta(seconds=1))
    keys = keeper(hierarchy, store, clock)
    assert await keys.sweep() == []
    clock.advance(timedelta(seconds=1))
    assert await sweeps(keys, clock) == [key]


# --- which file is overwritten: only the archived intermediate's own key ---------------


@pytest.mark.parametrize("link", ["symbolic link", "hard link"])
async def test_an_archive_key_file_that_names_the_live_key_is_kept(
        hierarchy: Hierarchy, store: Store, caplog: pytest.LogCaptureFixture, link: str) -> None:
    """An archive key that is another name for the key the server signs with (a symlink,
    or a hard link from restoring with ln instead of cp) is never overwritten: the file
    is opened without following links and kept unless it has exactly one name."""
    await sign_one(hierarchy, store, hierarchy.now + DAY)
    archived = renew(hierarchy, hierarchy.now + DAY)
    current = load_issuer(hierarchy)
    live = hierarchy.paths.intermediate_key
    archived.unlink()
    if link == "symbolic link":
        archived.symlink_to(os.path.relpath(live, archived.parent))
    else:
        os.link(live, archived)
    clock = FakeClock(hierarchy.now + 2 * DAY)
    keys = keeper(hierarchy, store, clock, lambda: current)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await sweeps(keys, clock) == []
    assert signs_with(hierarchy, current), "the live intermediate key was overwritten"
    assert os.path.lexists(archived)
    assert len(warnings(caplog)) == 1, warnings(caplog)  # said once, not at every sweep
    assert f"{archived} is kept" in warnings(caplog)[0]
    assert link in warnings(caplog)[0]


async def test_an_archive_key_file_that_is_not_the_archived_intermediates_key_is_kept(
        hierarchy: Hierarchy, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A key file whose public key is not the archived certificate's (a copy of another
    key put there by hand) is not the key the sweep was asked to destroy."""
    await sign_one(hierarchy, store, hierarchy.now + DAY)
    archived = renew(hierarchy, hierarchy.now + DAY)
    archived.unlink()
    write_key(archived, ec.generate_private_key(ec.SECP256R1()), None, exclusive=True)
    clock = FakeClock(hierarchy.now + 2 * DAY)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await sweeps(keeper(hierarchy, store, clock), clock) == []
    assert archived.exists()
    assert [w for w in warnings(caplog) if "does not match" in w], warnings(caplog)


async def test_the_archived_key_the_current_intermediate_was_certified_for_is_kept(
        hierarchy: Hierarchy, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """An operator who had the root certify the old key again and pointed the live key at
    the archive (a symlink to it) signs with the archived key: it matches the archived
    certificate and is still kept, because it is the current intermediate's key."""
    await sign_one(hierarchy, store, hierarchy.now + DAY)
    p = hierarchy.paths
    archived = renew(hierarchy, hierarchy.now + DAY)
    old_key = load_key(archived, None)
    again = build_intermediate(root_cert=hierarchy.root,
                               root_key=load_key(p.root_key, ROOT_PASSPHRASE),
                               public_key=old_key.public_key(),
                               subject=hierarchy.intermediate.subject, not_before=hierarchy.now)
    p.intermediate_key.unlink()
    p.intermediate_key.symlink_to(archived)
    files.write_file(p.intermediate_cert, files.pem(again), mode=files.PUBLIC_FILE)
    files.write_file(p.chain, files.pem(again, hierarchy.root), mode=files.PUBLIC_FILE)
    current = load_issuer(hierarchy)
    clock = FakeClock(hierarchy.now + 2 * DAY)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await sweeps(keeper(hierarchy, store, clock, lambda: current), clock) == []
    assert signs_with(hierarchy, current), "the live intermediate key was overwritten"
    assert [w for w in warnings(caplog) if "this server signs with" in w], warnings(caplog)


async def test_an_encrypted_archived_key_is_checked_with_the_intermediate_passphrase(
        make_hierarchy: Callable[..., Hierarchy], store: Store,
        caplog: pytest.LogCaptureFixture) -> None:
    """`renew` encrypts the archived key with the intermediate passphrase: with it the key
    is checked and destroyed; without it nothing proves which key the file holds, so it
    is kept, with one warning saying why."""
    hierarchy = make_hierarchy(intermediate_passphrase=PASS)
    await sign_one(hierarchy, store, hierarchy.now + DAY)
    archived = renew(hierarchy, hierarchy.now + DAY)
    clock = FakeClock(hierarchy.now + 2 * DAY)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await sweeps(keeper(hierarchy, store, clock), clock) == []
    assert archived.exists()
    assert [w for w in warnings(caplog) if "passphrase is needed" in w], warnings(caplog)

    assert await sweeps(keeper(hierarchy, store, clock, passphrase=PASS), clock) == [archived]
    assert not archived.exists()


# --- when: not on one reading of the wall clock, not on a store that knows nothing ------


async def test_a_wall_clock_a_year_ahead_for_one_sweep_destroys_nothing(
        hierarchy: Hierarchy, store: Store) -> None:
    """A wrong wall clock (bad RTC, NTP step) seen at one sweep makes every deadline look
    passed: a key is destroyed only when two sweeps a sweep interval apart agree, with
    the wall clock having moved as far as the monotonic clock between them. Leaves this
    intermediate signed are still valid; their CRLs need its key (RFC 5280 3.3)."""
    await sign_one(hierarchy, store, hierarchy.now + 60 * DAY)
    key = renew(hierarchy, hierarchy.now + DAY)
    clock = FakeClock(hierarchy.now + 365 * DAY)
    keys = keeper(hierarchy, store, clock)

    assert await keys.sweep() == []
    clock.advance(SWEEP_EVERY)
    clock.set_wall(hierarchy.now + 2 * DAY)  # NTP puts it right
    assert await keys.sweep() == []
    assert key.exists()


async def test_a_key_goes_on_the_second_agreeing_sweep_and_a_clock_step_restarts_the_wait(
        hierarchy: Hierarchy, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await sign_one(hierarchy, store, hierarchy.now + DAY)
    key = renew(hierarchy, hierarchy.now + DAY)
    clock = FakeClock(hierarchy.now + 2 * DAY)
    keys = keeper(hierarchy, store, clock)
    caplog.set_level(logging.INFO, "acme_ca")

    assert await keys.sweep() == []  # may go: seen once
    clock.advance(timedelta(hours=1))
    assert await keys.sweep() == []  # too soon after
    clock.advance(SWEEP_EVERY)
    clock.set_wall(clock.now() + DAY)  # the wall clock stepped meanwhile
    assert await keys.sweep() == []
    assert [w for w in warnings(caplog) if "wall clock" in w], warnings(caplog)
    clock.advance(SWEEP_EVERY)
    assert await keys.sweep() == [key]


async def test_a_store_that_knows_nothing_the_intermediate_signed_keeps_its_key(
        hierarchy: Hierarchy, store: Store, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """An empty or wrong database ([storage] url changed, restored elsewhere) says no
    certificate ends later only because it knows none: the key is then kept until the
    intermediate itself expires, after which nothing it signed can be valid (RFC 5280
    6.1.3 (a)(2)), with one warning."""
    await sign_one(hierarchy, store, hierarchy.now + 60 * DAY)
    key = renew(hierarchy, hierarchy.now + DAY)
    empty = await open_store("sqlite:///" + str(tmp_path / "other.sqlite"))
    try:
        clock = FakeClock(hierarchy.now + 2 * DAY)
        keys = keeper(hierarchy, empty, clock)
        caplog.set_level(logging.INFO, "acme_ca")

        assert await sweeps(keys, clock) == []
        assert key.exists()
        assert [w for w in warnings(caplog) if "no certificate it signed" in w], warnings(caplog)
        clock.advance(hierarchy.intermediate.not_valid_after_utc - clock.now())
        assert await sweeps(keys, clock) == [key]
    finally:
        await empty.close()
