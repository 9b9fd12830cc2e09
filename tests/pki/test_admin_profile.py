"""The admin certificate's profile (issue 13 item 2, ``acme-ca admin-cert``):
CN="acme-ca admin NAME" (the subject alone marks it), no subjectAltName, clientAuth
only, the CRL and AIA pointers every leaf carries; RFC 5280 clean (pkilint), and
verifiable by OpenSSL under an intermediate whose name constraints permit only
bluerobin.local and exclude every IP address (RFC 5280 4.2.1.10: with no SAN there is
nothing those constraints apply to; OpenSSL checks a CN against dNSName constraints
only when it looks like a host name: two labels or more, no space)."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from acme_ca.errors import PkiError
from acme_ca.pki import files
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, generate_key
from acme_ca.pki.profiles import admin_name, admin_request
from acme_ca.pki.publication import Publication
from acme_ca.pki.signer import sign_certificate
from tests.conftest import Hierarchy
from tests.required import require_program
from tests.test_pkilint import lint_chain, lint_pkix


def admin_leaf(issuer: Issuer, hierarchy: Hierarchy, name: str = "alice") -> x509.Certificate:
    key = generate_key(KeyType.EC_P256)
    return issuer.issue(admin_request(key.public_key(), name,
                                      hierarchy.now - timedelta(minutes=1),
                                      hierarchy.now + timedelta(days=30)))


@pytest.fixture
def published(hierarchy: Hierarchy) -> Issuer:
    """The intermediate with its CRL and issuer URLs, as ``serve`` and admin-cert load it."""
    p = hierarchy.paths
    return Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain, None, hierarchy.now,
                       publication=Publication("http://127.0.0.1:8556", ocsp=False))


def test_the_admin_leaf_is_a_client_certificate_named_by_its_subject(
        hierarchy: Hierarchy, published: Issuer) -> None:
    leaf = admin_leaf(published, hierarchy)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "acme-ca admin alice"
    assert len(leaf.subject) == 1 and admin_name(leaf) == "alice"
    with pytest.raises(x509.ExtensionNotFound):  # RFC 5280 4.2.1.6: never an empty SAN
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess)


def test_the_admin_leaf_is_rfc5280_clean(hierarchy: Hierarchy, published: Issuer) -> None:
    leaf = admin_leaf(published, hierarchy)
    assert lint_pkix(leaf) == []
    assert lint_chain(published.certificate, leaf) == []


@pytest.mark.parametrize("name", ["alice.example", "alice@bluerobin.local", "", "-x",
                                  "a" * 51, "álice", "alice bob"])
def test_a_name_the_constraints_could_apply_to_is_refused(
        issuer: Issuer, hierarchy: Hierarchy, name: str) -> None:
    with pytest.raises(PkiError, match="admin name"):
        admin_leaf(issuer, hierarchy, name)


def test_openssl_verifies_it_as_a_tls_client_under_the_constrained_intermediate(
        hierarchy: Hierarchy, issuer: Issuer, tmp_path: Path) -> None:
    """`openssl verify -purpose sslclient` (name constraints checked): OK. The control:
    a certificate named like a host outside the constraints fails the same check."""
    openssl = require_program("openssl")
    constraints = hierarchy.intermediate.extensions.get_extension_for_class(
        x509.NameConstraints)
    assert constraints.critical
    leaf = tmp_path / "alice.crt"
    leaf.write_bytes(files.pem(admin_leaf(issuer, hierarchy)))
    argv = [openssl, "verify", "-purpose", "sslclient", "-CAfile",
            str(hierarchy.paths.root_cert), "-untrusted", str(hierarchy.paths.intermediate_cert)]
    longest = tmp_path / "longest.crt"  # a 64-character CN (RFC 5280 ub-common-name)
    longest.write_bytes(files.pem(admin_leaf(issuer, hierarchy, "a" * 50)))
    result = subprocess.run([*argv, str(leaf), str(longest)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == 2

    outside = tmp_path / "outside.crt"
    key = generate_key(KeyType.EC_P256)
    named = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")])
    control = sign_certificate(x509.CertificateBuilder(
        issuer_name=hierarchy.intermediate.subject, subject_name=named,
        public_key=key.public_key(), serial_number=2, not_valid_before=hierarchy.now,
        not_valid_after=hierarchy.now + timedelta(days=1)), issuer.signer)
    outside.write_bytes(files.pem(control))
    refused = subprocess.run([*argv, str(outside)], capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert "permitted subtree violation" in refused.stdout + refused.stderr
