"""Shared fixtures: fast EC hierarchies on disk, CA certificates built to order, CSRs.

Everything here uses ECDSA keys (P-384 roots, P-256 intermediates and leaves) so a
hierarchy costs milliseconds; the one RSA 4096 root lives in tests/pki/test_profiles.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_ca.domain.origin import Origin, set_origin
from acme_ca.pki import files
from acme_ca.pki.hierarchy import HierarchyFiles, HierarchySpec, create_hierarchy
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, PrivateKey, load_key
from tests.softhsm import SoftHsm
from tests.store.pg import relay  # noqa: F401  (a fixture: PostgreSQL behind a relay)

ROOT_PASSPHRASE = b"correct horse battery"
DOMAIN = "bluerobin.local"


@dataclass(frozen=True)
class Hierarchy:
    """A hierarchy written by create_hierarchy, with what a test needs to check it."""

    paths: HierarchyFiles
    root: x509.Certificate
    intermediate: x509.Certificate
    now: datetime
    intermediate_passphrase: bytes | None


def hierarchy_paths(base: Path) -> HierarchyFiles:
    """The layout `acme-ca init` uses, under `base`."""
    return HierarchyFiles(
        root_key=base / "offline" / "root-ca.key",
        root_cert=base / "ca" / "root-ca.crt",
        intermediate_cert=base / "ca" / "intermediate-ca.crt",
        intermediate_key=base / "ca" / "intermediate-ca.key",
        chain=base / "ca" / "ca-chain.pem",
    )


@pytest.fixture
def now() -> datetime:
    """The present, to the second (X.509 times carry no fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def make_hierarchy(tmp_path: Path, now: datetime) -> Callable[..., Hierarchy]:
    """Create a P-384 root + P-256 intermediate under tmp_path/<name>."""

    def make(
        name: str = "ca",
        *,
        intermediate_passphrase: bytes | None = None,
        permitted_domains: tuple[str, ...] | None = (DOMAIN,),
        intermediate_validity: timedelta = timedelta(days=1825),
        intermediate_key_type: KeyType = KeyType.EC_P256,
    ) -> Hierarchy:
        paths = hierarchy_paths(tmp_path / name)
        spec = HierarchySpec(
            root_key_type=KeyType.EC_P384,
            intermediate_key_type=intermediate_key_type,
            permitted_domains=permitted_domains,
            intermediate_validity=intermediate_validity,
        )
        root, intermediate = create_hierarchy(
            spec,
            paths,
            root_passphrase=ROOT_PASSPHRASE,
            intermediate_passphrase=intermediate_passphrase,
            now=now,
        )
        return Hierarchy(paths, root, intermediate, now, intermediate_passphrase)

    return make


def reissue_intermediate(paths: HierarchyFiles, constraints: x509.NameConstraints, *,
                         root_passphrase: bytes = ROOT_PASSPHRASE,
                         intermediate_passphrase: bytes | None = None) -> x509.Certificate:
    """The intermediate at `paths` signed again by its root, same key, subject and
    extensions but these name constraints; the certificate and chain files are
    overwritten, as an operator would before a SIGHUP (an intermediate made elsewhere,
    narrower than `init` makes)."""
    (root,) = files.load_certificates(paths.root_cert)
    (old,) = files.load_certificates(paths.intermediate_cert)
    root_key = load_key(paths.root_key, root_passphrase)
    key = load_key(paths.intermediate_key, intermediate_passphrase)
    builder = x509.CertificateBuilder(
        issuer_name=root.subject, subject_name=old.subject, public_key=key.public_key(),
        serial_number=x509.random_serial_number(), not_valid_before=old.not_valid_before_utc,
        not_valid_after=old.not_valid_after_utc)
    for extension in old.extensions:
        if not isinstance(extension.value, x509.NameConstraints):
            builder = builder.add_extension(extension.value, extension.critical)
    certificate = builder.add_extension(constraints, critical=True).sign(
        root_key, hashes.SHA384())
    paths.intermediate_cert.write_bytes(files.pem(certificate))
    paths.chain.write_bytes(files.pem(certificate, root))
    return certificate


@pytest.fixture
def hierarchy(make_hierarchy: Callable[..., Hierarchy]) -> Hierarchy:
    return make_hierarchy()


def load_issuer(h: Hierarchy, now: datetime | None = None,
                passphrase: bytes | None = None) -> Issuer:
    """The intermediate of `h` as serve loads it, at `now` (default: h's), with
    `passphrase` (default: the one `h` was made with)."""
    p = h.paths
    return Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain,
                       passphrase or h.intermediate_passphrase, now or h.now)


@pytest.fixture
def issuer(hierarchy: Hierarchy) -> Issuer:
    return load_issuer(hierarchy)


@pytest.fixture
def make_ca_cert(now: datetime) -> Callable[..., x509.Certificate]:
    """A CA-looking certificate built to order, to break one rule at a time.

    Self-signed unless `issuer=(cert, key)` is given. `ca=False` drops CA:TRUE,
    `key_usage=None` drops keyUsage, `key_cert_sign=False` drops that bit.
    """

    def make(
        key: PrivateKey,
        *,
        issuer: tuple[x509.Certificate, PrivateKey] | None = None,
        cn: str = "Test CA",
        ca: bool = True,
        key_usage: bool | None = True,
        key_cert_sign: bool = True,
        not_before: datetime | None = None,
        validity: timedelta = timedelta(days=365),
    ) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
        start = not_before or now - timedelta(hours=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + validity)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if key_usage:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=key_cert_sign,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        return builder.sign(signer, hashes.SHA256())

    return make


@pytest.fixture
def make_csr() -> Callable[..., x509.CertificateSigningRequest]:
    """make_csr("a.bluerobin.local", ..., cn=None, key=None, extra=()) -> a signed CSR.

    Positional names become DNS SANs (no SAN extension when there are none and no
    `extra`); `extra` adds other GeneralNames; `key` defaults to a fresh P-256 key.
    """

    def make(
        *dns_names: str,
        cn: str | None = None,
        key: PrivateKey | None = None,
        extra: tuple[x509.GeneralName, ...] = (),
    ) -> x509.CertificateSigningRequest:
        signer = key or ec.generate_private_key(ec.SECP256R1())
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
        builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
        names = [x509.DNSName(n) for n in dns_names] + list(extra)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signer, hashes.SHA256())

    return make


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsm:
    """A SoftHSM2 token of this test's own (tests/softhsm.py), found through
    SOFTHSM2_CONF by this process and the subprocesses it starts."""
    token = SoftHsm.create(tmp_path / "softhsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    return token


@pytest.fixture(autouse=True)
def nobody_acting() -> None:
    """Each test starts with no one acting (domain/origin.py): a command run in-process
    by an earlier test set its OS user as the actor of this thread's context, which a
    later test's audit entries would otherwise carry."""
    set_origin(Origin())
