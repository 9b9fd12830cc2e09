"""Destroying the keys of replaced intermediates once nothing they signed can be valid.

`acme-ca intermediate renew` archives the old intermediate's key, which is needed
only to sign CRLs for the certificates it issued, with the time after which policy
says none of them can be unexpired: the renewal plus [policy] max_validity and the
backdate (pki/archive.py). `serve` (worker 0) sweeps at start and every 6 h, and
destroys a key (overwritten, unlinked: ``archive.destroy_key``) when

- that time has passed;
- the store holds no certificate from that intermediate, in any state, that ends
  later: a client-chosen validity window (RFC 8555 7.1.3 notBefore in the future), or
  a server that went on signing with the old intermediate until it was reloaded, can
  outlast the policy bound, and the records say so exactly;
- the store holds at least one certificate from it, or the intermediate itself has
  expired. A store that knows nothing it signed is a new or wrong database (every
  intermediate a server ran with signed at least its TLS certificate), and "nothing
  ends later" from it proves nothing; after the intermediate expires nothing it
  signed can validate (RFC 5280 6.1.3 (a)(2)). The key is kept with one warning;
- two sweeps at least 5 h apart (so: the next one) both found the above, and between
  them the wall clock moved as far as the monotonic clock (within a minute). One
  reading of a wall clock a year ahead makes every time look passed; a step of the
  wall clock between the two sweeps (NTP correcting a bad RTC, an operator) restarts
  the wait. A wall clock wrong at both sweeps and steady in between cannot be told
  from the right time without an outside reference; that is not caught;
- it is not the intermediate this server signs with (renewed, not yet reloaded);
- the file is that intermediate's key and nothing else (``destroy_key`` checks the
  open file): no symbolic link followed, no second name (hard link), the private key
  of the archived certificate and not of the current one. An archived key encrypted
  with a passphrase this server does not have cannot be checked, so it is kept.

A key on a PKCS#11 token (the archive names it in a ``.key-uri`` file: pki/archive.py)
goes under the same rules, all but those of the file that holds a key: its deadline,
the store's records, the two sweeps, not the current intermediate; then the name is
read without following a symbolic link, must be pinned to one key (its CKA_ID), and
the token must hold there the key of the archived certificate, not the current one's;
the key pair is then destroyed on the token (``token.destroy_token_key``) and the
name unlinked. The hard-link check does not apply (the file holds no key), nor the
passphrase: the PIN is [ca] intermediate_key's, sent only when the archived key is on
that same token, and the library [ca] pkcs11_module (``archive.read_key_uri``); a
query in the archived name is ignored. A token that cannot be reached keeps the key,
with a warning, until a later sweep.

The certificate stays in the archive: it is public, the chain of what it signed, and
the issuer of their CRLs. Every key destroyed is logged; every key kept is logged
once (per reason) with the time until which it is kept, or as a warning why the file
was left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from acme_ca.clock import Clock
from acme_ca.errors import AcmeCaError
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.archive import ArchivedIntermediate, destroy_key, load_archive
from acme_ca.pki.hierarchy import fingerprint
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.signer import off_loop
from acme_ca.store.reads import ReadStore

log = logging.getLogger(__name__)

SWEEP_EVERY = timedelta(hours=6)
HOLD = timedelta(hours=5)  # two sweeps that agree must be this far apart (so: the next one)
DRIFT = timedelta(minutes=1)  # how far the two clocks may part in that time (NTP slews less)
EVER = datetime(1970, 1, 1, tzinfo=UTC)  # latest_expiry after this: of any certificate


class ArchivedKeys:
    def __init__(
        self,
        archive: Path,
        store: ReadStore,
        clock: Clock,
        issuer: Callable[[], Issuer],
        retention: timedelta,
        *,
        passphrase: Callable[[], bytes | None] = lambda: None,
        pkcs11_module: Path | None = None,
        pin_from: Pkcs11Uri | None = None,
    ) -> None:
        """`retention`: for keys archived before `renew` recorded a time, how long after
        the key file was written it is kept. `passphrase`: the intermediate key's, which
        `renew` encrypted the archived key with (read at each destruction, as a reload
        reads it). `pkcs11_module` and `pin_from` ([ca] pkcs11_module and, when it is a
        URI, [ca] intermediate_key): for keys kept on a token."""
        self._archive = archive
        self._store = store
        self._clock = clock
        self._issuer = issuer
        self._retention = retention
        self._passphrase = passphrase
        self._module = pkcs11_module
        self._pin_from = pin_from
        self._announced: dict[Path, str] = {}
        self._due: dict[Path, tuple[datetime, float]] = {}  # first found it could go: when

    async def run(self, every: timedelta = SWEEP_EVERY) -> None:
        """Sweep now, then every `every`, until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:  # a bug: say so, and try again at the next sweep
                log.exception("the sweep of archived intermediate keys failed")
            await asyncio.sleep(every.total_seconds())

    async def sweep(self) -> list[Path]:
        """Destroy every archived key that may go; the paths destroyed."""
        try:
            archived = load_archive(self._archive)
        except AcmeCaError as exc:
            log.error("cannot read the intermediate archive: %s", exc)
            return []
        destroyed = []
        now, tick = self._clock.now(), self._clock.monotonic()
        for item in archived:
            if not item.has_key():
                continue
            try:
                kept = await self._kept(item, now)
                if kept is None:
                    kept = self._unconfirmed(item.held_at, now, tick)
                else:
                    self._due.pop(item.held_at, None)
                if kept is None:
                    held_at, on_token = item.held_at, item.on_token
                    current = self._issuer().certificate.public_key()
                    await off_loop(destroy_key, item, self._passphrase(), current,
                                   module=self._module, pin_from=self._pin_from)
                    self._due.pop(held_at, None)
                    destroyed.append(held_at)
                    log.info(
                        "destroyed %s, the key of intermediate %x: no certificate it signed "
                        "can still be valid (its certificate stays)",
                        f"the token key {held_at} named" if on_token else held_at,
                        item.certificate.serial_number,
                    )
                else:
                    self._announce(item, *kept)
            except AcmeCaError as exc:
                self._announce(item, f"and left as it is: {exc}", logging.WARNING)
        return destroyed

    def _announce(self, item: ArchivedIntermediate, why: str, level: int) -> None:
        """Say why a key is kept, once (not at every sweep) until the reason changes."""
        if self._announced.get(item.held_at) != why:
            self._announced[item.held_at] = why
            log.log(level, "archived intermediate key %s is kept %s", item.held_at, why)

    async def _kept(self, item: ArchivedIntermediate, now: datetime) -> Kept | None:
        """Why and until when the key stays; None if it may be destroyed now."""
        signed_by = fingerprint(item.certificate)
        if signed_by == self._issuer().fingerprint:
            return Kept("until this server is reloaded (SIGHUP): it still signs with that "
                        "intermediate")
        deadline = item.destroy_after(self._retention)
        if now < deadline:
            return Kept(f"until {_utc(deadline)}, when no certificate it signed can be valid")
        latest = await self._store.latest_expiry(signed_by, after=EVER)
        ends = item.certificate.not_valid_after_utc
        if latest is None and now < ends:
            return Kept(
                f"until {_utc(ends)}, when that intermediate expires: the store holds no "
                "certificate it signed (a new or wrong database?), so it cannot tell that "
                "none is still valid",
                logging.WARNING,
            )
        if latest is not None and now < latest:
            return Kept(f"until {_utc(latest)}, when the last certificate it signed expires")
        return None

    def _unconfirmed(self, path: Path, now: datetime, tick: float) -> Kept | None:
        """None if a sweep at least HOLD earlier found the key could go too, with the wall
        clock moved as far as the monotonic clock since; else why it waits."""
        seen_at, seen_tick = self._due.setdefault(path, (now, tick))
        passed = timedelta(seconds=tick - seen_tick)
        moved = now - seen_at
        if abs(moved - passed) > DRIFT:
            self._due[path] = (now, tick)
            return Kept(
                f"for another {_hours(HOLD)} at least: the wall clock moved {moved} while "
                f"{passed} passed",
                logging.WARNING,
            )
        if passed < HOLD:
            return Kept(
                f"until a sweep {_hours(HOLD)} or more after the one at {_utc(seen_at)} "
                "finds it may still go"
            )
        return None


class Kept(NamedTuple):
    why: str  # after "is kept ..."
    level: int = logging.INFO


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g} h"
