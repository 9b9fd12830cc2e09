"""The delegated OCSP responder certificates of this host, one per signing intermediate.

Each intermediate that signs (the current one, and each archived one whose key is still
kept: its certificates are still answered for) issues a responder certificate
(``pki/ocsp.build_responder``) through ``issuance.issue``, so the store reserves its
serial and records it like every certificate the intermediate signs, and the
intermediate's signer (a key file or a token) signs it in the signing pool. They are this
host's files, as the server's own TLS certificate is (``server_tls.py``):

    <data_dir>/ocsp/<issuer id>.crt   the responder certificate (PEM, 0644)
    <data_dir>/ocsp/<issuer id>.key   its ECDSA P-256 key (0600)

On start one is reused while it is issued by that intermediate, matches its key and
has more than a third of its life left; otherwise a new one is issued. Worker 0 of
each host renews (``run_renewals``: also issues one for an intermediate that appears
after a reload, at once: ``wake``), the other workers load what it wrote (``follow``).
A responder whose record an operator revoked is replaced at the next renewal round
(within a minute). The lifetime is
at least three times the responses' (``responder_validity``), so a response signed
just before a renewal never outlives the certificate that verifies it. An archived
intermediate's responder never ends after the last certificate it signed, so the
responders never keep its key from being destroyed (``archived_keys.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from acme_ca.authority import issuance
from acme_ca.authority.server_tls import renewal_due, revoked
from acme_ca.clock import Clock
from acme_ca.errors import PkiError
from acme_ca.pki import files
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, generate_key, load_key, same_key, write_key
from acme_ca.pki.ocsp import RESPONDER_VALIDITY, build_responder, responder_request
from acme_ca.pki.publication import issuer_id
from acme_ca.pki.signer import FileSigner, Signer
from acme_ca.store.base import Store

log = logging.getLogger(__name__)

PROFILE = "ocsp-responder"  # the profile its record names (not an ACME profile)


class SigningCa(Protocol):
    """An intermediate whose key signs now (``Issuer``, or an archived one's signer)."""

    @property
    def certificate(self) -> x509.Certificate: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def signer(self) -> Signer: ...


@dataclass(frozen=True, slots=True)
class Responder:
    """The responder certificate of one intermediate (``ca``), and its key (a file of
    this host's: ``pki/signer.sign_ocsp_response`` signs with key files only)."""

    ca: x509.Certificate
    fingerprint: str  # the intermediate's
    certificate: x509.Certificate
    signer: FileSigner


def responder_validity(response_lifetime: timedelta) -> timedelta:
    """How long a responder certificate lives: ``RESPONDER_VALIDITY``, or three
    response lifetimes when that is longer (renewed with a third left: one lifetime)."""
    return max(RESPONDER_VALIDITY, 3 * response_lifetime)


class ResponderCertificates:
    def __init__(
        self,
        *,
        store: Store,
        signers: Callable[[], Iterable[SigningCa]],
        directory: Path,
        clock: Clock,
        validity: timedelta = RESPONDER_VALIDITY,
        backdate: timedelta = timedelta(minutes=1),
    ) -> None:
        """``signers``: the intermediates that sign now, the current one first, then the
        archived ones whose key is kept (``Issuer.crl_signers``), read at each use (a
        reload changes them)."""
        self._store = store
        self._signers = signers
        self._directory = directory
        self._clock = clock
        self._validity = validity
        self._backdate = backdate
        self._responders: dict[str, Responder] = {}  # by the intermediate's fingerprint
        self._final: set[str] = set()  # intermediates whose responder is not renewed
        self._ended: set[str] = set()  # archived, nothing unexpired: never again
        self._wake = asyncio.Event()  # the intermediates changed (a reload): look now

    def signers(self) -> list[SigningCa]:
        return list(self._signers())

    def responder(self, fingerprint: str) -> Responder | None:
        """The responder of the intermediate with ``fingerprint``, if this host has one
        that is valid now (an archived intermediate's ends with what it signed)."""
        found = self._responders.get(fingerprint)
        now = self._clock.now()
        if found is None or not (found.certificate.not_valid_before_utc <= now
                                 < found.certificate.not_valid_after_utc):
            return None
        return found

    def paths(self, fingerprint: str) -> tuple[Path, Path]:
        """(certificate, key) files of the responder of the intermediate ``fingerprint``."""
        name = issuer_id(fingerprint)
        return self._directory / f"{name}.crt", self._directory / f"{name}.key"

    async def start(self) -> None:
        """Reuse a fresh responder from disk for each signing intermediate; issue the rest."""
        self.load()
        await self.renew_due()

    def load(self) -> None:
        """Take what is on disk for each signing intermediate (a follower's view)."""
        for signer in self.signers():
            found = self._load(signer)
            if found is not None:
                self._responders[signer.fingerprint] = found

    async def renew_due(self) -> None:
        """Issue a responder for each signing intermediate that has none, whose
        responder has a third of its life left, or whose responder's record is REVOKED
        (an operator's ``acme-ca certs revoke``: ocsp-nocheck means no relying party checks,
        so it must stop signing here); for an archived one, only while a certificate it
        signed ends later (``_end``)."""
        now = self._clock.now()
        for index, signer in enumerate(self.signers()):
            current = self._responders.get(signer.fingerprint)
            revoked = current is not None and await self._revoked(current)
            if current is not None and not revoked and not self._due(current.certificate):
                continue
            end = await self._end(signer, now, archived=index > 0)
            if end <= now or (current is not None and not revoked
                              and end <= current.certificate.not_valid_after_utc):
                self._final.add(signer.fingerprint)  # it serves out its time
                continue
            await self._issue(signer, end)

    async def _revoked(self, responder: Responder) -> bool:
        if not await revoked(self._store, responder.certificate):
            return False
        log.warning("OCSP responder certificate %x of intermediate %s is revoked: "
                    "replacing it", responder.certificate.serial_number,
                    issuer_id(responder.fingerprint))
        return True

    async def ended(self, signer: SigningCa) -> bool:
        """Whether ``signer`` is an archived intermediate with nothing unexpired to
        answer for (so no responder, ever again): its CertID is then not one this
        responder serves (``unauthorized``), not one to ask again (``tryLater``)."""
        signers = self.signers()
        if not signers or signers[0].fingerprint == signer.fingerprint:
            return False
        if signer.fingerprint not in self._ended and await self._store.latest_expiry(
                signer.fingerprint, after=self._clock.now()) is None:
            self._ended.add(signer.fingerprint)  # an archived key signs nothing new
        return signer.fingerprint in self._ended

    async def _end(self, signer: SigningCa, now: datetime, *, archived: bool) -> datetime:
        """The notAfter of a responder issued now: ``validity`` from now; for an archived
        intermediate, no later than the last certificate it signed (its previous
        responders included). Otherwise each responder, a certificate the intermediate
        signed, would keep its key from ever being destroyed (archived_keys.py waits
        for every certificate it signed to expire)."""
        end = now + self._validity
        if not archived:
            return end
        latest = await self._store.latest_expiry(signer.fingerprint, after=now)
        return now if latest is None else min(end, latest)

    def _load(self, signer: SigningCa) -> Responder | None:
        cert_path, key_path = self.paths(signer.fingerprint)
        if not (cert_path.exists() and key_path.exists()):
            return None
        try:
            cert = files.load_certificate(cert_path, "OCSP responder certificate")
            key = load_key(key_path, None, "OCSP responder key")
            cert.verify_directly_issued_by(signer.certificate)
        except (PkiError, ValueError, TypeError, InvalidSignature):
            return None
        if not same_key(key, cert.public_key()):  # type: ignore[arg-type]
            return None  # caught between the key's write and the certificate's
        return Responder(signer.certificate, signer.fingerprint, cert, FileSigner(key, key_path))

    def _due(self, cert: x509.Certificate) -> bool:
        return self._clock.now() >= renewal_due(cert)

    def seconds_until_due(self) -> float:
        """Until the first responder is due (at least 1 s)."""
        due = [renewal_due(r.certificate) for fingerprint, r in self._responders.items()
               if fingerprint not in self._final]
        if not due:
            return 1.0
        return max(1.0, (min(due) - self._clock.now()).total_seconds())

    async def _issue(self, signer: SigningCa, end: datetime) -> None:
        key = generate_key(KeyType.EC_P256)
        now = self._clock.now()
        request = responder_request(key, now - self._backdate, end)
        ca = Issuer(signer.certificate, signer.signer, (signer.certificate,), signer.fingerprint)
        cert = await issuance.issue(
            self._store, ca, request, now, profile=PROFILE,
            sign=lambda r: build_responder(signer.certificate, signer.signer, r),
        )
        cert_path, key_path = self.paths(signer.fingerprint)
        write_key(key_path, key, None, exclusive=False)  # 0600, then the certificate
        files.write_file(cert_path, files.pem(cert), mode=files.PUBLIC_FILE)
        self._responders[signer.fingerprint] = Responder(
            signer.certificate, signer.fingerprint, cert, FileSigner(key, key_path))
        self._final.discard(signer.fingerprint)
        log.info("OCSP responder certificate %x for intermediate %s, valid until %s",
                 cert.serial_number, issuer_id(signer.fingerprint),
                 cert.not_valid_after_utc.isoformat())

    def wake(self) -> None:
        """The intermediates changed (a reload): ``run_renewals`` issues for a new one
        now, ``follow`` loads now, instead of at their next period."""
        self._wake.set()

    async def _sleep(self, seconds: float) -> bool:
        """``seconds``, or less if ``wake`` is called: whether it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    async def run_renewals(self, every: float = 60.0) -> None:
        """Worker 0: renew whenever one is due, issue one for an intermediate that has
        none (a reload: at once when woken, else within ``every`` seconds), replace a
        revoked one; errors are logged and retried."""
        while True:
            await self._sleep(min(self.seconds_until_due(), every))
            try:
                await self.renew_due()
            except Exception:
                log.exception("renewing an OCSP responder certificate failed; retrying in 60 s")
                await asyncio.sleep(60)

    async def follow(self, every: float = 1.0) -> None:
        """The other workers: load the responders worker 0 wrote when their files change
        (a stat of each every second: a new intermediate's is answered within one)."""
        seen: dict[Path, int] = {}
        while True:
            woken = await self._sleep(every)
            current = {}
            for signer in self.signers():
                cert_path, _ = self.paths(signer.fingerprint)
                try:
                    current[cert_path] = cert_path.stat().st_mtime_ns
                except OSError:
                    continue
            if woken or current != seen:
                self.load()
                seen = current
