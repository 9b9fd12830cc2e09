"""The server's own TLS certificate, issued from the intermediate and renewed in place.

On start an existing certificate is reused while it is issued by the current
intermediate, names the right host, has more than a third of its life left and its
record is not REVOKED (an operator's `acme-ca certs revoke`); otherwise a new one is
issued (and recorded like any other, through ``issuance.issue``: signed by the
intermediate's signer in the signing pool, off the event loop). The renewal loop
(worker 0) also replaces a certificate revoked while it runs, within a minute; the
other workers follow the file.
Renewal loads the new chain into the same SSLContext, so new connections get it with
no restart.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from acme_ca.authority import issuance
from acme_ca.clock import Clock
from acme_ca.config_policy import DEFAULT_PROFILE
from acme_ca.domain.models import CertificateStatus, serial_hex
from acme_ca.errors import NotFound, PkiError
from acme_ca.pki import files
from acme_ca.pki.constraints import first_forbidden
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, generate_key, load_key, same_key, write_key
from acme_ca.pki.profiles import SERVER_AUTH, IpAddress, LeafRequest
from acme_ca.store.base import Store

log = logging.getLogger(__name__)

TLS_VALIDITY = timedelta(days=7)


def renewal_due(cert: x509.Certificate) -> datetime:
    """When a certificate the server renews itself (its TLS certificate, its OCSP
    responders') is due: when a third of its lifetime is left."""
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - lifetime / 3


async def revoked(store: Store, cert: x509.Certificate) -> bool:
    """Whether the record of a certificate the server uses itself (its TLS certificate,
    an OCSP responder's) is REVOKED: an operator's `acme-ca certs revoke`, which the
    server answers by replacing it (RFC 5280 5: relying parties stop trusting it)."""
    try:
        record = await store.get_certificate(serial_hex(cert.serial_number))
    except NotFound:
        return False
    return record.status is CertificateStatus.REVOKED


class ServerTls:
    def __init__(
        self,
        *,
        store: Store,
        issuer: Callable[[], Issuer],
        dns_names: tuple[str, ...],
        ip_addresses: tuple[IpAddress, ...],
        directory: Path,
        clock: Clock,
        validity: timedelta = TLS_VALIDITY,
        backdate: timedelta = timedelta(minutes=1),
    ) -> None:
        self._store = store
        self._issuer = issuer
        self._dns = dns_names
        self._ips = ip_addresses
        self._cert_path = directory / "server.crt"
        self._key_path = directory / "server.key"
        self._clock = clock
        self._validity = validity
        self._backdate = backdate
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._shared: list[ssl.SSLContext] = []  # other listeners' (share)
        self.certificate: x509.Certificate | None = None

    async def start(self) -> ssl.SSLContext:
        forbidden = first_forbidden(self._issuer().certificate, (*self._dns, *self._ips))
        if forbidden:
            raise PkiError(
                f"server.hostname / listen address {forbidden} is outside the "
                "intermediate's name constraints: the server's TLS certificate "
                "would not verify; pick a name inside them"
            )
        current = self._load_current()
        if current is None or self._due(current) or await self._revoked(current):
            await self.renew()
        else:
            self._use(current)
        return self.context

    def _load_current(self) -> x509.Certificate | None:
        if not (self._cert_path.exists() and self._key_path.exists()):
            return None
        try:
            cert = files.load_certificate(self._cert_path)
            key = load_key(self._key_path, None)
            cert.verify_directly_issued_by(self._issuer().certificate)
        except (PkiError, ValueError, TypeError, InvalidSignature):
            return None
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None
        wanted = set(self._dns) | {str(a) for a in self._ips}
        names = set(san.get_values_for_type(x509.DNSName)) | {
            str(a) for a in san.get_values_for_type(x509.IPAddress)
        }
        if names != wanted or not same_key(key, cert.public_key()):  # type: ignore[arg-type]
            return None
        return cert

    def _due(self, cert: x509.Certificate) -> bool:
        return self._clock.now() >= renewal_due(cert)

    async def _revoked(self, cert: x509.Certificate) -> bool:
        if not await revoked(self._store, cert):
            return False
        log.warning("server TLS certificate %x is revoked: replacing it", cert.serial_number)
        return True

    def seconds_until_due(self) -> float:
        assert self.certificate is not None
        return max(1.0, (renewal_due(self.certificate) - self._clock.now()).total_seconds())

    async def renew(self) -> None:
        issuer = self._issuer()
        key = generate_key(KeyType.EC_P256)
        now = self._clock.now()
        request = LeafRequest(
            public_key=key.public_key(),
            dns_names=self._dns,
            ip_addresses=self._ips,
            not_before=now - self._backdate,
            not_after=now + self._validity,
            extended_key_usages=SERVER_AUTH,  # the server's own: serverAuth, whatever [profiles]
        )
        # its record names the shipped server profile, as before profiles were configurable
        cert = await issuance.issue(self._store, issuer, request, now, profile=DEFAULT_PROFILE)
        write_key(self._key_path, key, None, exclusive=False)
        files.write_file(self._cert_path, issuer.chain_pem(cert), mode=files.PUBLIC_FILE)
        self._use(cert)
        log.info(
            "server TLS certificate %x issued, valid until %s",
            cert.serial_number,
            cert.not_valid_after_utc.isoformat(),
        )

    def share(self, context: ssl.SSLContext) -> ssl.SSLContext:
        """``context`` (another listener's: the admin listener's, which asks clients for
        certificates) serves this certificate too, renewed with it; after ``start``."""
        context.load_cert_chain(self._cert_path, self._key_path)
        self._shared.append(context)
        return context

    def _use(self, cert: x509.Certificate) -> None:
        for context in (self.context, *self._shared):
            context.load_cert_chain(self._cert_path, self._key_path)
        self.certificate = cert

    async def follow(self, every: float = 5.0) -> None:
        """For a worker that does not renew: load the certificate another process renewed."""
        seen = self._cert_path.stat().st_mtime_ns if self._cert_path.exists() else 0
        while True:
            await asyncio.sleep(every)
            try:
                mtime = self._cert_path.stat().st_mtime_ns
            except OSError:
                continue
            if mtime == seen:
                continue
            current = self._load_current()
            if current is not None:  # a consistent pair (key and certificate) on disk
                self._use(current)
                seen = mtime
                log.info("loaded the renewed server TLS certificate %x", current.serial_number)

    async def run_renewals(self, every: float = 60.0) -> None:
        """Renew whenever a third of the lifetime is left, or within ``every`` seconds
        of an operator revoking the certificate; errors are logged and retried."""
        while True:
            await asyncio.sleep(min(self.seconds_until_due(), every))
            try:
                if (self.certificate is not None and not self._due(self.certificate)
                        and not await self._revoked(self.certificate)):
                    continue
                await self.renew()
            except Exception:
                log.exception("renewing the server TLS certificate failed; retrying in 60 s")
                await asyncio.sleep(60)
