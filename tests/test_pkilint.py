"""Every certificate the CA makes passes pkilint (PyPI), the linter Let's Encrypt and
the CA/Browser Forum use, read as RFC 5280 asks.

What is linted is what a user gets: the CA that `acme-ca serve` bootstraps with the
default configuration (`[server] hostname = "localhost"`, `[policy] allowed_domains =
["bluerobin.local"]`), the server's own TLS certificate as `serve` issues it, and a
leaf of each profile (server, client, both) for each key type pki/csr.py accepts (RSA
2048/3072/4096, ECDSA P-256/P-384; Ed25519 is refused there, so never issued, and the
last test checks that it still is).

Three linters:

- RFC 5280 (`lint_pkix_cert`) over every certificate, and the issuer/subject chain
  linter (`lint_pkix_signer_signee_cert_chain`) over root -> intermediate and
  intermediate -> each leaf: **no finding above INFO** (no FATAL, ERROR, WARNING or
  NOTICE). RFC 5280 binds a private CA as much as a public one.
- CA/Browser Forum TLS Baseline Requirements (`lint_cabf_serverauth_cert`) over the
  root, the intermediate and every leaf that may serve TLS (server, both, the server's
  own): these rules are written for *publicly trusted* CAs, and a private CA for
  internal names breaks some of them by design. A finding fails the test unless its
  code is in `NOT_FOR_A_PRIVATE_CA` below, each with the reason; everything else the
  BR linter checks (key sizes and encodings, signature algorithms, criticality, EKU
  and basicConstraints rules, name syntax, validity) must be clean. Client-only leaves
  are not TLS server certificates, so the BR do not apply to them.

And the CRL linter (`lint_crl`, pkilint's `lint_crl lint -t CRL -p PKIX|BR`) over the
CRLs the intermediates sign (tests/pki/test_crl.py): RFC 5280 and the CA/B Forum CRL
profile (BR 7.2), no finding above INFO.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pkilint import finding_filter, loader, pkix
from pkilint.bin import lint_pkix_signer_signee_cert_chain as signer_signee
from pkilint.cabf import cabf_crl, serverauth
from pkilint.pkix import certificate, extension, name
from pkilint.pkix import crl as pkix_crl
from pkilint.validation import ValidationFindingSeverity as Severity

from acme_ca.authority.profiles import usages
from acme_ca.cli.ca_init import bootstrap
from acme_ca.cli.serve import IssuerHolder, server_tls
from acme_ca.clock import SystemClock
from acme_ca.config import load_config
from acme_ca.config_policy import Profile, default_profiles
from acme_ca.errors import PkiError
from acme_ca.pki.csr import check_public_key
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, generate_key
from acme_ca.pki.profiles import LeafRequest
from acme_ca.store import open_store

# CA/B Forum BR findings that a private CA for internal names takes on knowingly.
NOT_FOR_A_PRIVATE_CA = {
    # Its purpose: certificates for internal names such as web.bluerobin.local (and
    # private addresses), which the BR forbid in publicly trusted certificates only.
    "cabf.internal_domain_name": "internal names are what a private CA is for",
    "cabf.internal_ip_address": "as above: the server's own loopback address, and "
    "addresses inside [policy] allowed_ip_networks",
    # BR 7.1.4.3 wants O and C in a public CA's subject; `acme-ca init --org --country`
    # sets them, the bootstrap leaves them to the operator.
    "cabf.serverauth.ca.country_attribute_absent": "subject attributes are the operator's",
    "cabf.serverauth.ca.organization_name_attribute_absent": "as above",
    # A certificatePolicies OID asserts conformance to a CP/CPS; the BR's reserved OIDs
    # would claim a BR audit this CA never had.
    "cabf.serverauth.ca.certificate_policies_extension_absent": "no CP/CPS to assert",
    "cabf.serverauth.subscriber.certificate_policies_extension_absent": "as above",
    # The root key is offline and signs no CRL: the intermediate carries no CRL
    # distribution point or AIA. Leaves carry both (the intermediate's CRL and
    # certificate, pki/publication.py), so no subscriber finding of the kind is allowed.
    "cabf.serverauth.ca.crl_distribution_points_extension_absent": "the root signs no CRL",
    "cabf.serverauth.ca.authority_info_access_extension_absent": "as above",
    # BR 7.1.2.5.2 wants a technically constrained CA to constrain directoryName too;
    # the intermediate constrains the names TLS checks (dNSName, iPAddress).
    "cabf.serverauth.ca.incomplete_name_constraints": "constrains the names TLS checks",
    # WARNING: RFC 5280 4.2.1.1 lets a self-signed root omit its AKI.
    "cabf.serverauth.root.authority_key_identifier_extension_absent": "RFC 5280 allows it",
    # WARNING: RFC 5280 4.2.1.2 says end-entity certificates SHOULD carry an SKI; the BR
    # recommend against it. RFC 5280 wins here.
    "cabf.serverauth.subscriber.subject_key_identifier_extension_present": "RFC 5280",
    # WARNING: keyEncipherment on RSA leaves keeps TLS 1.2 RSA key exchange working
    # for older clients (profiles.build_leaf).
    "cabf.serverauth.subscriber_rsa_digitalsignature_and_keyencipherment_present": "TLS 1.2",
    # WARNING: a CN appears only when the CSR had one (the guide's postgres.csr), and it
    # is always one of the SANs.
    "cabf.serverauth.dv.common_name_attribute_present": "from the CSR, also a SAN",
}


@dataclass(frozen=True)
class Finding:
    linter: str
    severity: Severity
    code: str
    where: str
    message: str | None

    def __str__(self) -> str:
        detail = f": {self.message}" if self.message else ""
        return f"{self.linter} {self.severity} {self.code} @ {self.where}{detail}"


def _document(cert: x509.Certificate, label: str, collection: dict | None = None):
    return loader.RFC5280CertificateDocumentLoader().load_der_document(
        cert.public_bytes(Encoding.DER), label, label if collection is not None else None,
        collection,
    )


def _findings(linter: str, results) -> list[Finding]:
    return [
        Finding(linter, d.finding.severity, d.finding.code, str(r.node.path), d.message)
        for r in results
        for d in r.finding_descriptions
        if d.finding.severity < Severity.INFO  # FATAL, ERROR, WARNING, NOTICE
    ]


def lint_pkix(cert: x509.Certificate) -> list[Finding]:
    """What `lint_pkix_cert lint FILE` reports above INFO."""
    validator = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(
            name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
        ),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )
    return _findings("pkix", validator.validate(_document(cert, "certificate").root))


def lint_cabf(cert: x509.Certificate) -> list[Finding]:
    """What `lint_cabf_serverauth_cert lint -d FILE` reports above INFO."""
    document = _document(cert, "certificate")
    kind = serverauth.determine_certificate_type(document)
    validator = certificate.create_pkix_certificate_validator_container(
        serverauth.create_decoding_validators(), serverauth.create_validators(kind)
    )
    results, _ = finding_filter.filter_results(
        serverauth.create_serverauth_finding_filters(kind), validator.validate(document.root)
    )
    return _findings(f"cabf({kind})", results)


def lint_chain(issuer: x509.Certificate, subject: x509.Certificate) -> list[Finding]:
    """What `lint_pkix_signer_signee_cert_chain lint ISSUER SUBJECT` reports above INFO."""
    collection: dict = {}
    collection["issuer"] = _document(issuer, "issuer", collection)
    collection["subject"] = _document(subject, "subject", collection)
    decoding = signer_signee.create_decoder_validation_container()
    results = decoding.validate(collection["issuer"].root)
    results += decoding.validate(collection["subject"].root)
    results += signer_signee.create_issuer_validation_container().validate(
        collection["issuer"].root
    )
    results += signer_signee.create_subject_validation_container().validate(
        collection["subject"].root
    )
    return _findings("chain", results)


def lint_crl(der: bytes, *, baseline: bool = True) -> list[Finding]:
    """What `lint_crl lint -t CRL -p BR FILE` reports above INFO (``baseline=False``:
    ``-p PKIX``, RFC 5280 alone): pkilint's CRL linter (pkilint/bin/lint_crl.py)."""
    kind = pkix_crl.CertificateRevocationListType.CRL
    document_validators, validity_validators = [], []
    if baseline:
        document_validators.append(cabf_crl.CabfCrlReasonCodeAllowlistValidator(kind))
        validity_validators.append(cabf_crl.create_validity_period_validator(kind))
    validator = pkix_crl.create_pkix_crl_validator_container(
        [pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
         pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)],
        [pkix_crl.create_issuer_validator_container([]),
         pkix_crl.create_validity_validator_container(validity_validators),
         pkix_crl.create_extensions_validator_container([]),
         *document_validators],
    )
    document = loader.RFC5280CertificateListDocumentLoader().load_der_document(der, "crl")
    return _findings("crl(BR)" if baseline else "crl", validator.validate(document.root))


def not_allowed(findings: list[Finding]) -> list[str]:
    return [str(f) for f in findings if f.code not in NOT_FOR_A_PRIVATE_CA]


@dataclass(frozen=True)
class DefaultCa:
    root: x509.Certificate
    intermediate: x509.Certificate
    server_tls: x509.Certificate
    issuer: Issuer


@pytest.fixture(scope="module")
def default_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DefaultCa]:
    """What the Quick start's `acme-ca serve` makes: the CA it bootstraps with the
    default configuration and its own TLS certificate (cli/serve.py, as serve does)."""
    data = tmp_path_factory.mktemp("pkilint") / "acme-ca-data"
    config = load_config(None, overrides={"server.data_dir": str(data)})
    bootstrap(config)
    holder = IssuerHolder(config, SystemClock())

    async def start_tls() -> x509.Certificate:
        store = await open_store(config.storage.url)
        try:
            tls = server_tls(config, store, holder, SystemClock())
            await tls.start()
            assert tls.certificate is not None
            return tls.certificate
        finally:
            await store.close()

    own = asyncio.run(start_tls())
    issuer = holder.current
    yield DefaultCa(issuer.root, issuer.certificate, own, issuer)


def test_the_default_root_and_intermediate_are_lint_clean(default_ca: DefaultCa) -> None:
    """RFC 5280 4.2.1.10 and 4.2.1.6: the intermediate's name constraints hold dNSNames
    in preferred name syntax; pkilint refuses the single label "localhost" that the
    default `[server] hostname` used to put there."""
    for cert in (default_ca.root, default_ca.intermediate):
        assert lint_pkix(cert) == [], cert.subject.rfc4514_string()
        assert not_allowed(lint_cabf(cert)) == [], cert.subject.rfc4514_string()
    assert lint_chain(default_ca.root, default_ca.intermediate) == []


def test_the_servers_own_tls_certificate_is_lint_clean_and_names_its_address(
    default_ca: DefaultCa,
) -> None:
    """The Quick start server's certificate, issued from the intermediate: it carries
    the loopback address it listens on (RFC 5280 4.2.1.6 iPAddress), not "localhost"."""
    own = default_ca.server_tls
    assert lint_pkix(own) == []
    assert not_allowed(lint_cabf(own)) == []
    assert lint_chain(default_ca.intermediate, own) == []
    san = own.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == []


LEAF_KEYS = [KeyType.RSA2048, KeyType.RSA3072, KeyType.RSA4096, KeyType.EC_P256,
             KeyType.EC_P384]


@pytest.fixture(scope="module")
def leaf_keys() -> dict[KeyType, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    return {kind: generate_key(kind) for kind in LEAF_KEYS}


# The profiles every CA ships (config_policy.default_profiles): server, client, mtls.
PROFILES = default_profiles(timedelta(days=7), timedelta(days=90))


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=lambda p: p.name)
@pytest.mark.parametrize("kind", LEAF_KEYS, ids=str)
@pytest.mark.parametrize("common_name", [None, "web.bluerobin.local"], ids=["no-cn", "cn"])
def test_every_leaf_profile_and_key_type_is_lint_clean(
    default_ca: DefaultCa,
    leaf_keys: dict[KeyType, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey],
    profile: Profile,
    kind: KeyType,
    common_name: str | None,
) -> None:
    """RFC 5280 4.2.1.3/4.2.1.12: keyUsage and EKU per profile and key type; 4.2.1.6:
    the SAN critical when the subject is empty."""
    key = leaf_keys[kind]
    check_public_key(key.public_key())  # a key the CA accepts in a CSR
    now = SystemClock().now()
    leaf = default_ca.issuer.issue(LeafRequest(
        public_key=key.public_key(), dns_names=("web.bluerobin.local", "api.bluerobin.local"),
        ip_addresses=(), not_before=now - timedelta(minutes=1), not_after=now + timedelta(days=7),
        extended_key_usages=usages(profile), common_name=common_name,
    ))
    # linted with what serve puts in every leaf: its CRL and issuer URLs (RFC 5280
    # 4.2.1.13 CRL distribution points, 4.2.2.1 AIA caIssuers)
    assert leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert lint_pkix(leaf) == []
    assert lint_chain(default_ca.intermediate, leaf) == []
    if "serverAuth" in profile.extended_key_usages:  # the TLS server BR apply to TLS servers only
        assert not_allowed(lint_cabf(leaf)) == []


def test_ed25519_is_still_refused_so_no_leaf_of_it_needs_linting() -> None:
    """If pki/csr.py starts accepting Ed25519, add it to LEAF_KEYS above."""
    with pytest.raises(PkiError):
        check_public_key(ed25519.Ed25519PrivateKey.generate().public_key())


def test_the_linters_do_find_what_they_look_for(default_ca: DefaultCa, tmp_path: Path) -> None:
    """The lint helpers report findings (so an empty list above means something): a
    name constraint on the single label "localhost" is an RFC 5280 syntax error."""
    from acme_ca.pki.profiles import build_intermediate, name_constraints

    key = generate_key(KeyType.EC_P256)
    bad = build_intermediate(
        root_cert=default_ca.root, root_key=key, public_key=key.public_key(),
        subject=default_ca.intermediate.subject, not_before=SystemClock().now(),
        constraints=name_constraints(("bluerobin.local", "localhost")),
    )
    codes = {f.code for f in lint_pkix(bad)}
    assert "pkix.invalid_domain_name_syntax" in codes
    assert lint_chain(default_ca.root, bad) != []  # signed by the wrong key
    assert any(f.code == "cabf.internal_domain_name" for f in lint_cabf(bad))
