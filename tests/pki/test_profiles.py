"""The root, intermediate and leaf profiles against RFC 5280, and chains a verifier accepts."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from acme_ca.pki.constraints import first_forbidden
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, generate_key, signature_hash
from acme_ca.pki.profiles import (
    SERVER_AUTH,
    LeafRequest,
    build_intermediate,
    build_leaf,
    build_root,
    ca_name,
    name_constraints,
)
from acme_ca.pki.serials import random_serial
from acme_ca.pki.signer import FileSigner
from tests.conftest import Hierarchy, reissue_intermediate

P384 = ec.SECP384R1()
P256 = ec.SECP256R1()


def ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


def ski(cert: x509.Certificate) -> bytes:
    return ext(cert, x509.SubjectKeyIdentifier).value.digest


def der_octets(serial: int) -> int:
    """Length of the DER INTEGER content of a positive serial (a 0x00 pad if the top bit is set)."""
    return serial.bit_length() // 8 + 1


@pytest.fixture
def root_pair(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(P384)
    return build_root(key, ca_name("Test Root", "BlueRobin", "US"), now), key


def leaf_request(now: datetime, key: object = None, **changes: object) -> LeafRequest:
    fields: dict[str, object] = {
        "public_key": key or ec.generate_private_key(P256).public_key(),
        "dns_names": ("www.bluerobin.local",),
        "ip_addresses": (),
        "not_before": now - timedelta(minutes=1),
        "not_after": now + timedelta(days=7),
        "extended_key_usages": SERVER_AUTH,
    }
    return LeafRequest(**{**fields, **changes})  # type: ignore[arg-type]


def test_root_profile(root_pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> None:
    """RFC 5280 4.2.1.9 (basicConstraints critical in CA certs), 4.2.1.3 (keyUsage), 4.2.1.2."""
    root, key = root_pair
    assert root.version is x509.Version.v3
    assert root.issuer == root.subject
    assert root.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "US"
    root.verify_directly_issued_by(root)
    constraints = ext(root, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ext(root, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert ski(root) == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert root.not_valid_after_utc - root.not_valid_before_utc == timedelta(days=3650)
    assert isinstance(root.signature_hash_algorithm, hashes.SHA384)  # P-384 signer


def test_rsa4096_root_as_the_guide(now: datetime) -> None:
    key = generate_key(KeyType.RSA4096)
    root = build_root(key, ca_name("BlueRobin Root CA", "BlueRobin", "US"), now)
    public = root.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 4096
    assert isinstance(root.signature_hash_algorithm, hashes.SHA256)
    root.verify_directly_issued_by(root)


def test_intermediate_profile(
    root_pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], now: datetime
) -> None:
    """RFC 5280 4.2.1.9 (pathLenConstraint), 4.2.1.1 (AKI = issuer SKI), 4.2.1.10 (critical)."""
    root, root_key = root_pair
    key = ec.generate_private_key(P256)
    inter = build_intermediate(
        root_cert=root,
        root_key=root_key,
        public_key=key.public_key(),
        subject=ca_name("Test Intermediate", None, None),
        not_before=now,
        constraints=name_constraints(("bluerobin.local", "data-layer")),
    )
    inter.verify_directly_issued_by(root)
    assert inter.issuer == root.subject
    constraints = ext(inter, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ext(inter, x509.KeyUsage).critical and ext(inter, x509.KeyUsage).value.key_cert_sign
    assert ext(inter, x509.AuthorityKeyIdentifier).value.key_identifier == ski(root)
    assert ski(inter) == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    names = ext(inter, x509.NameConstraints)
    assert names.critical
    assert names.value.permitted_subtrees == [
        x509.DNSName("bluerobin.local"),
        x509.DNSName("data-layer"),
    ]
    # With no IP network permitted, all of IPv4 and IPv6 is excluded (4.2.1.10).
    assert set(names.value.excluded_subtrees) == {
        x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
        x509.IPAddress(ipaddress.ip_network("::/0")),
    }
    assert isinstance(inter.signature_hash_algorithm, hashes.SHA384)  # signed by P-384


def test_name_constraints_with_a_network_exclude_nothing() -> None:
    net = ipaddress.ip_network("10.0.0.0/8")
    constraints = name_constraints(("bluerobin.local",), (net,))
    assert x509.IPAddress(net) in constraints.permitted_subtrees
    assert constraints.excluded_subtrees is None


def test_intermediate_validity_is_cut_at_the_roots(now: datetime) -> None:
    key = ec.generate_private_key(P256)
    root = build_root(key, ca_name("Short Root", None, None), now, timedelta(days=30))
    inter = build_intermediate(
        root_cert=root,
        root_key=key,
        public_key=ec.generate_private_key(P256).public_key(),
        subject=ca_name("Test Intermediate", None, None),
        not_before=now,
        validity=timedelta(days=1825),
    )
    assert inter.not_valid_after_utc == root.not_valid_after_utc


@pytest.mark.parametrize(
    "usages",
    [
        [ExtendedKeyUsageOID.SERVER_AUTH],
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    ],
    ids=["server", "client", "both"],
)
def test_leaf_profile(hierarchy: Hierarchy, issuer: Issuer, usages: list[object]) -> None:
    """RFC 5280 4.2.1.12 (EKU: the usages the request carries, in order), 4.2.1.9
    (CA:FALSE), 4.2.1.3 (no keyEncipherment for EC)."""
    request = leaf_request(
        hierarchy.now,
        extended_key_usages=tuple(usages),
        common_name="www.bluerobin.local",
        ip_addresses=(ipaddress.ip_address("10.0.0.5"),),
    )
    leaf = issuer.issue(request)
    leaf.verify_directly_issued_by(hierarchy.intermediate)
    assert list(ext(leaf, x509.ExtendedKeyUsage).value) == usages
    constraints = ext(leaf, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = ext(leaf, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_encipherment and not usage.value.key_cert_sign
    san = ext(leaf, x509.SubjectAlternativeName)
    assert not san.critical  # the subject is not empty
    assert san.value.get_values_for_type(x509.DNSName) == ["www.bluerobin.local"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == ski(
        hierarchy.intermediate
    )
    assert ski(leaf) == x509.SubjectKeyIdentifier.from_public_key(request.public_key).digest
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)  # P-256 intermediate


def test_rsa_leaf_gets_key_encipherment(hierarchy: Hierarchy, issuer: Issuer) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = issuer.issue(leaf_request(hierarchy.now, key.public_key()))
    usage = ext(leaf, x509.KeyUsage).value
    assert usage.key_encipherment and usage.digital_signature


def test_empty_subject_makes_the_san_critical(hierarchy: Hierarchy, issuer: Issuer) -> None:
    """RFC 5280 4.2.1.6: with an empty subject the subjectAltName MUST be critical."""
    leaf = issuer.issue(leaf_request(hierarchy.now, common_name=None))
    assert len(leaf.subject) == 0
    assert ext(leaf, x509.SubjectAlternativeName).critical


def test_leaf_validity_is_cut_at_the_issuers(hierarchy: Hierarchy, issuer: Issuer) -> None:
    far = hierarchy.intermediate.not_valid_after_utc + timedelta(days=30)
    leaf = issuer.issue(leaf_request(hierarchy.now, not_after=far))
    assert leaf.not_valid_after_utc == hierarchy.intermediate.not_valid_after_utc


def test_leaf_takes_the_given_serial(hierarchy: Hierarchy, issuer: Issuer) -> None:
    leaf = issuer.issue(leaf_request(hierarchy.now, serial=0x1234567890ABCDEF12))
    assert leaf.serial_number == 0x1234567890ABCDEF12


def test_random_serials() -> None:
    """RFC 5280 4.1.2.2: positive, at most 20 octets; CA/B BR 7.1: at least 64 random bits."""
    serials = [random_serial() for _ in range(1000)]
    assert len(set(serials)) == 1000
    for serial in serials:
        assert serial > 0
        assert serial.bit_length() >= 64
        assert der_octets(serial) <= 20


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [
        (KeyType.EC_P384, hashes.SHA384),
        (KeyType.EC_P256, hashes.SHA256),
        (KeyType.RSA2048, hashes.SHA256),
    ],
)
def test_signature_hash_follows_the_issuer_key(key_type: KeyType, expected: type) -> None:
    assert isinstance(signature_hash(generate_key(key_type)), expected)


def test_leaf_of_a_p384_intermediate_is_signed_with_sha384(
    make_hierarchy: Callable[..., Hierarchy],
) -> None:
    h = make_hierarchy("p384", intermediate_key_type=KeyType.EC_P384)
    p = h.paths
    p384 = Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain, None, h.now)
    leaf = p384.issue(leaf_request(h.now))
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA384)


# Verification with cryptography's RFC 5280 path builder (cryptography.x509.verification).


def verifier_store(hierarchy: Hierarchy) -> PolicyBuilder:
    return PolicyBuilder().store(Store([hierarchy.root])).time(hierarchy.now)


def test_server_leaf_verifies_to_the_root(hierarchy: Hierarchy, issuer: Issuer) -> None:
    leaf = issuer.issue(leaf_request(hierarchy.now, dns_names=("postgres.bluerobin.local",)))
    verifier = verifier_store(hierarchy).build_server_verifier(
        x509.DNSName("postgres.bluerobin.local")
    )
    chain = verifier.verify(leaf, list(issuer.chain[:-1]))
    assert chain == [leaf, hierarchy.intermediate, hierarchy.root]


def test_client_leaf_verifies_with_the_client_verifier(
    hierarchy: Hierarchy, issuer: Issuer
) -> None:
    leaf = issuer.issue(leaf_request(hierarchy.now,
                                      extended_key_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,)))
    verified = (
        verifier_store(hierarchy).build_client_verifier().verify(leaf, [hierarchy.intermediate])
    )
    assert verified.chain[-1] == hierarchy.root
    assert verified.subjects == [x509.DNSName("www.bluerobin.local")]
    # A client-only leaf is no good as a server certificate (EKU, RFC 5280 4.2.1.12).
    server = verifier_store(hierarchy).build_server_verifier(x509.DNSName("www.bluerobin.local"))
    with pytest.raises(VerificationError):
        server.verify(leaf, [hierarchy.intermediate])


@pytest.mark.parametrize("name", ["www.example.com", "evilbluerobin.local"])
def test_leaf_outside_the_name_constraints_is_rejected(
    hierarchy: Hierarchy, issuer: Issuer, name: str
) -> None:
    """RFC 5280 4.2.1.10: the intermediate's permitted subtrees bind every name below it."""
    request = leaf_request(hierarchy.now, dns_names=(name,))
    leaf = build_leaf(issuer.certificate, issuer.signer, request)  # no policy check on the way
    verifier = verifier_store(hierarchy).build_server_verifier(x509.DNSName(name))
    with pytest.raises(VerificationError, match="name constraint"):
        verifier.verify(leaf, [hierarchy.intermediate])


def test_ip_leaf_is_rejected_when_no_network_is_permitted(
    hierarchy: Hierarchy, issuer: Issuer
) -> None:
    address = ipaddress.ip_address("10.0.0.5")
    leaf = issuer.issue(leaf_request(hierarchy.now, dns_names=(), ip_addresses=(address,)))
    verifier = verifier_store(hierarchy).build_server_verifier(x509.IPAddress(address))
    with pytest.raises(VerificationError, match="name constraint"):
        verifier.verify(leaf, [hierarchy.intermediate])


# constraints.first_forbidden: the CA's own reading of its name constraints (RFC 5280 4.2.1.10).


@pytest.fixture
def constrained(
    root_pair: tuple, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Permits bluerobin.local, localhost and 127.0.0.1 only (what `init` makes by default)."""
    root, root_key = root_pair
    key = ec.generate_private_key(P256)
    constraints = name_constraints(
        ("bluerobin.local", "localhost"), (ipaddress.ip_network("127.0.0.1/32"),)
    )
    cert = build_intermediate(
        root_cert=root,
        root_key=root_key,
        public_key=key.public_key(),
        subject=ca_name("Constrained", None, None),
        not_before=now,
        constraints=constraints,
    )
    return cert, key


@pytest.mark.parametrize(
    ("names", "forbidden"),
    [
        (["localhost", "a.b.bluerobin.local", "*.bluerobin.local"], None),
        ([ipaddress.ip_address("127.0.0.1")], None),
        (["www.bluerobin.local", "evilbluerobin.local"], "evilbluerobin.local"),
        ([ipaddress.ip_address("127.0.0.2")], "127.0.0.2"),
    ],
)
def test_first_forbidden(constrained: tuple, names: list, forbidden: str | None) -> None:
    assert first_forbidden(constrained[0], names) == forbidden


def test_first_forbidden_excludes_every_address_when_no_network_is_permitted(
    hierarchy: Hierarchy,
) -> None:
    assert first_forbidden(hierarchy.intermediate, [ipaddress.ip_address("::1")]) == "::1"
    assert first_forbidden(hierarchy.root, ["www.example.com"]) is None  # no constraints


def test_first_forbidden_agrees_with_the_verifier_on_ipv6(
    constrained: tuple, root_pair: tuple, now: datetime
) -> None:
    """iPAddress is one name form: IPv4-only permitted subtrees permit no IPv6 address."""
    cert, key = constrained
    address = ipaddress.ip_address("::1")
    leaf = build_leaf(cert, FileSigner(key),
                      leaf_request(now, dns_names=(), ip_addresses=(address,)))
    verifier = (
        PolicyBuilder()
        .store(Store([root_pair[0]]))
        .time(now)
        .build_server_verifier(x509.IPAddress(address))
    )
    with pytest.raises(VerificationError, match="no permitted name constraints matched"):
        verifier.verify(leaf, [cert])
    assert first_forbidden(cert, [address]) == "::1"


def test_a_wildcard_over_an_excluded_subtree_is_forbidden(hierarchy: Hierarchy) -> None:
    """RFC 5280 4.2.1.10 compares a SAN with the constraints as a name, so verifiers
    such as OpenSSL 3.0 let *.bluerobin.local through an exclusion of
    secret.bluerobin.local and then (RFC 6125 6.4.3) accept it for
    secret.bluerobin.local. first_forbidden forbids a wildcard whenever an excluded
    DNS subtree lies at or below its base."""
    intermediate = reissue_intermediate(hierarchy.paths, x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("bluerobin.local")],
        excluded_subtrees=[x509.DNSName("secret.bluerobin.local")]))
    assert first_forbidden(intermediate, ["*.bluerobin.local"]) == "*.bluerobin.local"
    assert first_forbidden(intermediate, ["secret.bluerobin.local"]) == "secret.bluerobin.local"
    assert first_forbidden(intermediate, ["*.secret.bluerobin.local"]) == (
        "*.secret.bluerobin.local")
    assert first_forbidden(intermediate, ["*.web.bluerobin.local", "web.bluerobin.local"]) is None
