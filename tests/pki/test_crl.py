"""The CRL an intermediate signs (RFC 5280 section 5), the leaves that point at it, and
the intermediates that sign CRLs (the current one and the archived ones still kept)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AuthorityInformationAccessOID, CRLEntryExtensionOID

from acme_ca.errors import PkiError
from acme_ca.pki.crl import REASONS, CrlEntry, CrlSigner, build_crl
from acme_ca.pki.hierarchy import fingerprint, renew_intermediate
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import KeyType, generate_key
from acme_ca.pki.profiles import SERVER_AUTH, LeafRequest
from acme_ca.pki.publication import Publication
from tests.conftest import ROOT_PASSPHRASE, Hierarchy, load_issuer
from tests.test_pkilint import lint_crl

BASE = "http://ca.bluerobin.local:8556"
HOUR = timedelta(hours=1)


def signer_of(issuer: Issuer) -> CrlSigner:
    return next(issuer.crl_signers())


def crl_of(issuer: Issuer, now: datetime, entries: list[CrlEntry],
           number: int = 7) -> x509.CertificateRevocationList:
    der = build_crl(signer_of(issuer), number=number, this_update=now,
                    next_update=now + 24 * HOUR, entries=entries,
                    distribution_point=Publication(BASE).crl_url(issuer.fingerprint))
    return x509.load_der_x509_crl(der)


def leaf_of(issuer: Issuer, now: datetime) -> x509.Certificate:
    return issuer.issue(LeafRequest(
        public_key=generate_key(KeyType.EC_P256).public_key(),
        dns_names=("web.bluerobin.local",), ip_addresses=(), not_before=now,
        not_after=now + 24 * HOUR, extended_key_usages=SERVER_AUTH))


def test_a_crl_names_its_issuer_times_number_and_authority_key(
    issuer: Issuer, now: datetime
) -> None:
    """RFC 5280 5.1.2.1 v2; 5.1.2.3 issuer; 5.1.2.4/5 thisUpdate, nextUpdate; 5.2.1 AKI
    (the intermediate's SKI, as in its leaves); 5.2.3 CRLNumber, non-critical."""
    crl = crl_of(issuer, now, [])
    assert crl.issuer == issuer.certificate.subject
    assert crl.last_update_utc == now
    assert crl.next_update_utc == now + 24 * HOUR
    number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    assert (number.value.crl_number, number.critical) == (7, False)
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.value.digest
    assert len(crl) == 0
    assert b"\x02\x01\x01" in crl.tbs_certlist_bytes[:8]  # version INTEGER 1 (v2)


def test_the_issuing_distribution_point_is_the_url_the_leaves_carry(
    hierarchy: Hierarchy, now: datetime
) -> None:
    """RFC 5280 5.2.5: a critical issuing distribution point; its fullName is the leaves'
    CRL distribution point (4.2.1.13), and onlyContainsUserCerts (no CA is listed)."""
    issuer = load_issuer(hierarchy)
    issuer = Issuer(issuer.certificate, issuer.signer, issuer.chain, issuer.fingerprint,
                    publication=Publication(BASE))
    leaf = leaf_of(issuer, now)
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert cdp.critical is False
    (point,) = cdp.value
    idp = crl_of(issuer, now, []).extensions.get_extension_for_class(
        x509.IssuingDistributionPoint)
    assert idp.critical is True
    assert idp.value.full_name == point.full_name
    assert idp.value.only_contains_user_certs is True
    assert point.full_name == [x509.UniformResourceIdentifier(
        f"{BASE}/crl/{issuer.fingerprint[:16]}.crl")]


@pytest.mark.parametrize("ocsp", [False, True], ids=["crl-only", "ocsp"])
def test_leaves_name_the_issuer_certificate_and_the_responder_when_there_is_one(
    issuer: Issuer, now: datetime, ocsp: bool
) -> None:
    """RFC 5280 4.2.2.1: AIA, non-critical, with caIssuers (the intermediate over http)
    and an OCSP access method only when [revocation] ocsp is on."""
    issuer = Issuer(issuer.certificate, issuer.signer, issuer.chain, issuer.fingerprint,
                    publication=Publication(BASE, ocsp=ocsp))
    aia = leaf_of(issuer, now).extensions.get_extension_for_class(
        x509.AuthorityInformationAccess)
    assert aia.critical is False
    found = {d.access_method: d.access_location.value for d in aia.value}
    expected = {AuthorityInformationAccessOID.CA_ISSUERS:
                f"{BASE}/ca/{issuer.fingerprint[:16]}.crt"}
    if ocsp:
        expected[AuthorityInformationAccessOID.OCSP] = f"{BASE}/ocsp"
    assert found == expected


def test_a_leaf_without_publication_has_neither_extension(issuer: Issuer, now: datetime) -> None:
    """Offline tools with no [revocation] base_url: nothing points anywhere."""
    leaf = leaf_of(issuer, now)
    for kind in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            leaf.extensions.get_extension_for_class(kind)


def test_entries_carry_their_date_and_a_reason_unless_unspecified(
    issuer: Issuer, now: datetime
) -> None:
    """RFC 5280 5.1.2.6 revokedCertificates (serial, revocationDate); 5.3.1: the
    reasonCode extension is absent rather than unspecified (0)."""
    entries = [CrlEntry(0x1234, now - HOUR, 0), CrlEntry(0xABCDEF, now - 2 * HOUR, 1),
               CrlEntry(0x77, now, 4)]
    crl = crl_of(issuer, now, entries)
    assert len(crl) == 3
    unspecified = crl.get_revoked_certificate_by_serial_number(0x1234)
    assert unspecified is not None
    assert unspecified.revocation_date_utc == now - HOUR
    assert len(unspecified.extensions) == 0
    for serial, reason in ((0xABCDEF, x509.ReasonFlags.key_compromise),
                           (0x77, x509.ReasonFlags.superseded)):
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        assert entry is not None
        ext = entry.extensions.get_extension_for_oid(CRLEntryExtensionOID.CRL_REASON)
        assert (ext.value.reason, ext.critical) == (reason, False)


@pytest.mark.parametrize(("key_type", "hash_name"),
                         [(KeyType.EC_P256, "sha256"), (KeyType.EC_P384, "sha384"),
                          (KeyType.RSA2048, "sha256")])
def test_the_signature_verifies_with_the_intermediate_and_the_hash_matches_the_key(
    make_hierarchy: Callable[..., Hierarchy], now: datetime, key_type: KeyType,
    hash_name: str,
) -> None:
    """RFC 5280 5.1.1.2/5.1.2.2: signed by the issuer's key, the algorithm fit for it
    (keys.signature_hash: SHA-384 for P-384); a CRL from another key does not verify."""
    issuer = load_issuer(make_hierarchy(intermediate_key_type=key_type))
    crl = crl_of(issuer, now, [CrlEntry(5, now, 1)])
    assert crl.is_signature_valid(issuer.certificate.public_key())  # type: ignore[arg-type]
    assert isinstance(crl.signature_hash_algorithm, hashes.HashAlgorithm)
    assert crl.signature_hash_algorithm.name == hash_name
    other = load_issuer(make_hierarchy("other"))
    assert not crl.is_signature_valid(other.certificate.public_key())  # type: ignore[arg-type]


def test_a_crl_is_lint_clean(issuer: Issuer, now: datetime) -> None:
    """pkilint's CRL linter, RFC 5280 profile with every reason code, and the CA/B Forum
    profile (BR 7.2: its reason allowlist and a validity of at most 10 days) with the
    reasons the BR allow."""
    every_reason = [CrlEntry(serial + 1, now - HOUR, code)
                    for serial, code in enumerate(REASONS)]
    assert lint_crl(build_crl(signer_of(issuer), number=1, this_update=now,
                              next_update=now + 24 * HOUR, entries=every_reason,
                              distribution_point=f"{BASE}/crl/x.crl"), baseline=False) == []
    moved = build_crl(signer_of(issuer), number=1, this_update=now, next_update=now + 24 * HOUR,
                      entries=every_reason, distribution_point="http://crl.example/crl/x.crl",
                      earlier_points=[f"{BASE}/crl/x.crl", "http://crl.example/crl/x.crl"])
    assert lint_crl(moved, baseline=False) == []  # a URL from before base_url changed, once
    idp = x509.load_der_x509_crl(moved).extensions.get_extension_for_class(
        x509.IssuingDistributionPoint).value
    assert [n.value for n in idp.full_name] == ["http://crl.example/crl/x.crl",
                                                f"{BASE}/crl/x.crl"]
    allowed = [CrlEntry(serial + 1, now - HOUR, code)
               for serial, code in enumerate((0, 1, 3, 4, 5, 9))]
    for entries in ([], allowed):
        der = build_crl(signer_of(issuer), number=2**64, this_update=now,
                        next_update=now + 24 * HOUR, entries=entries,
                        distribution_point=f"{BASE}/crl/x.crl")
        assert lint_crl(der) == []


def test_the_crl_linter_finds_what_it_looks_for(issuer: Issuer, now: datetime) -> None:
    """So that the empty lists above mean something: certificateHold is outside the BR
    allowlist, and a 30-day CRL outlives the BR's 10 days."""
    der = build_crl(signer_of(issuer), number=1, this_update=now,
                    next_update=now + 30 * 24 * HOUR, entries=[CrlEntry(1, now, 6)],
                    distribution_point=f"{BASE}/crl/x.crl")
    codes = {f.code for f in lint_crl(der)}
    assert any("reason" in code for code in codes), codes
    assert any("validity" in code for code in codes), codes


@pytest.mark.parametrize(("change", "message"), [
    ({"number": 0}, "positive"),
    ({"next_update": "now"}, "later"),
    ({"entries": [CrlEntry(1, datetime(2026, 1, 1).astimezone(), 7)]}, "CRLReason"),
])
def test_what_rfc_5280_does_not_allow_is_refused(
    issuer: Issuer, now: datetime, change: dict, message: str
) -> None:
    """5.2.3 a CRL number is a non-negative integer (we start at 1); 5.1.2.5 nextUpdate
    after thisUpdate; 5.3.1 reason 7 is not a code."""
    arguments = {"number": 1, "this_update": now, "next_update": now + HOUR, "entries": [],
                 "distribution_point": f"{BASE}/crl/x.crl", **change}
    if arguments["next_update"] == "now":
        arguments["next_update"] = now
    with pytest.raises(PkiError, match=message):
        build_crl(signer_of(issuer), **arguments)


def test_archived_intermediates_with_their_key_sign_crls_until_it_is_destroyed(
    make_hierarchy: Callable[..., Hierarchy], now: datetime
) -> None:
    """After `intermediate renew` the old intermediate keeps signing the CRL of what it
    issued (RFC 5280 5.1.2.3: a CRL's issuer is the certificates' issuer) while its
    key is kept; a key destroyed since the load signs no more; an unreadable one is
    named, not fatal."""
    h = make_hierarchy(intermediate_passphrase=b"intermediate pass")
    old = h.intermediate
    renew_intermediate(h.paths, root_passphrase=ROOT_PASSPHRASE,
                       intermediate_passphrase=b"intermediate pass", now=now,
                       keep_old_key_until=now + 24 * HOUR)
    p = h.paths
    loaded = Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain,
                         b"intermediate pass", now, archived_keys=True)
    signers = list(loaded.crl_signers())
    assert [s.fingerprint for s in signers] == [loaded.fingerprint, fingerprint(old)]
    archived = signers[1]
    assert archived.certificate == old
    crl = x509.load_der_x509_crl(build_crl(
        archived, number=1, this_update=now, next_update=now + HOUR, entries=[],
        distribution_point=f"{BASE}/crl/x.crl"))
    assert crl.issuer == old.subject
    assert crl.is_signature_valid(old.public_key())  # type: ignore[arg-type]

    without = Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain,
                          b"intermediate pass", now)
    assert [s.fingerprint for s in without.crl_signers()] == [without.fingerprint]

    assert archived.held_at is not None
    archived.held_at.unlink()
    assert [s.fingerprint for s in loaded.crl_signers()] == [loaded.fingerprint]

    renew_intermediate(h.paths, root_passphrase=ROOT_PASSPHRASE,
                       intermediate_passphrase=b"intermediate pass", now=now,
                       keep_old_key_until=now + 24 * HOUR)
    wrong = Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain,
                        b"intermediate pass", now, archived_keys=True)
    assert len(list(wrong.crl_signers())) == 2  # the first archived key is gone
    broken = next(iter(s for s in wrong.crl_signers() if s.held_at is not None))
    assert broken.held_at is not None
    broken.held_at.write_bytes(b"not a key")
    reloaded = Issuer.load(p.intermediate_cert, p.intermediate_key, p.chain,
                           b"intermediate pass", now, archived_keys=True)
    assert [s.fingerprint for s in reloaded.crl_signers()] == [reloaded.fingerprint]
    assert list(reloaded.unreadable) == [broken.fingerprint]
    assert str(broken.held_at) in reloaded.unreadable[broken.fingerprint]
