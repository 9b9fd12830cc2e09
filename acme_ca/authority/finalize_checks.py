"""What a finalize request must satisfy before anything reaches the signer (RFC 8555 7.4).

Everything here is pure: a CSR's contents, the order, the policy and the clock's `now`
in; a :class:`LeafRequest` the signer can always encode out, or an :class:`AcmeProblem`.
A request that cannot be signed must be refused here, while the order is still
ready: past ``start_issuance`` a refusal costs the order (it becomes invalid).

Decisions (docs/security.md, "CSR identifiers compared as (type, value)" and
"Finalize inputs refused before the signer"):

- Identifiers are compared as (type, value) pairs, IP addresses as parsed addresses
  (RFC 8738 3): a dNSName "10.0.0.5" never stands for the ip identifier 10.0.0.5, and
  "FD00:0::5" is fd00::5. The common name, when present, must be one of the CSR's SANs
  of its own type (one that parses as an IP address is an IP address).
- A common name longer than RFC 5280's ub-common-name (64) cannot be encoded: as
  Boulder does, the certificate leaves it out and names the subject by its
  subjectAltName alone (critical then, RFC 5280 4.2.1.6). Refusing would make names of
  65 to 253 characters unissuable for clients that copy the first name into the CN.
- A client's notBefore (7.1.3) is kept as given, with no backdate added to it, but a
  certificate never starts before now - backdate: an order created with notBefore =
  now and finalized a week later starts at signing (less the backdate), not a week
  before, before its identifiers were validated. newOrder refuses an older notBefore;
  at finalize it is moved up, not refused, since it was acceptable when asked for.
- A client's notAfter fixes the end; without a notBefore the backdate is taken from
  inside the window, never added to it, so the lifetime stays within ``[policy]
  max_validity`` (as for default windows: the backdate counts inside).
- A window that still cannot be signed (it ends before it can begin: the intermediate
  expires first, or the requested notAfter has passed; or it is longer than a
  since-lowered max_validity) is malformed, naming which, as Boulder answers
  notBefore/notAfter it will not honour; the order stays ready. An order whose
  requested notAfter has passed is invalid before it gets here (``OrderService.get_order``).
- The identifier policy is applied again (:func:`order_profile`, the same
  ``check_identifiers`` as newOrder, with today's ``[policy]``, intermediate, profile
  and grant): a name denied, or put outside the name constraints by a reloaded
  intermediate, since newOrder is rejectedIdentifier, and the order becomes invalid,
  since no CSR can satisfy it (RFC 8555 7.1.6). Boulder re-checks policy at finalize
  too (``csr.VerifyCSR`` -> ``WillingToIssue``) but leaves the order ready. So does a
  profile retired or removed since newOrder, or no longer in the account's grant:
  invalidProfile (draft-ietf-acme-profiles 4), the order invalid.
- The profile decides the rest: the CSR's key must be of a type it allows (badCSR
  naming them, the order stays ready: another key may do), its extended key usages
  go into the certificate, its default_validity is the lifetime of an order that
  asked none, its max_validity caps the window.
"""

from __future__ import annotations

from datetime import datetime
from ipaddress import ip_address

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from acme_ca.authority.grants import Grant
from acme_ca.authority.identifiers import (
    IdentifiersRefused,
    check_identifiers,
    identifier_for_name,
)
from acme_ca.authority.issuance import certificate_window
from acme_ca.authority.profiles import Catalog, ProfileRefused, check_key, usages
from acme_ca.config import PolicyConfig
from acme_ca.config_policy import Profile
from acme_ca.domain.models import Order
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed
from acme_ca.encoding import jwk_thumbprint
from acme_ca.errors import PkiError, PolicyError
from acme_ca.pki.csr import CsrContents, load_csr, read_csr
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import same_key
from acme_ca.pki.profiles import UB_COMMON_NAME, IpAddress, LeafRequest

# An identifier as compared: ("dns", name) or ("ip", parsed address).
Key = tuple[str, str | IpAddress]


def _key(kind: str, value: str) -> Key:
    return (kind, ip_address(value)) if kind == "ip" else (kind, value)


def _shown(keys: set[Key]) -> str:
    return ", ".join(sorted(f"{kind}:{value}" for kind, value in keys))


def order_profile(order: Order, policy: PolicyConfig, issuer: Issuer, profiles: Catalog,
                  grant: Grant) -> Profile:
    """The order's profile, if the CA still issues under it and today's policy,
    intermediate, profile and grant still allow every identifier of the order; else the
    problem: invalidProfile (draft-ietf-acme-profiles 4: retired or removed since, or no
    longer the account's), or rejectedIdentifier (RFC 8555 7.1.6), also for a type the
    profile no longer issues for."""
    try:
        profile = profiles.in_use(order.profile, grant)
        check_identifiers(order.identifiers, policy, intermediate=issuer.certificate,
                          profile=profile, grant=grant)
    except ProfileRefused as refused:
        raise refused.problem() from None
    except IdentifiersRefused as refused:
        # A finalize names no profile: a type the profile no longer issues for is
        # rejectedIdentifier, as at newOrder for an order naming none (draft 4).
        raise refused.problem(profile_named=False) from None
    return profile


def csr_request(csr_der: bytes, order: Order, account_thumbprint: str, policy: PolicyConfig,
                issuer: Issuer, now: datetime, profile: Profile) -> LeafRequest:
    """``leaf_request`` for the CSR ``csr_der``; badCSR if it cannot be read."""
    try:
        contents = read_csr(load_csr(csr_der), cn_as_san=False,
                            blocked_keys=policy.blocked_keys)
    except PkiError as exc:
        raise AcmeProblem(ProblemType.BAD_CSR, str(exc)) from None
    return leaf_request(contents, order, account_thumbprint, policy, issuer, now, profile)


def same_key_as(csr_der: bytes, certificate_der: bytes) -> bool:
    """Whether the CSR asks for the key the certificate certifies (a finalize sent
    again for a valid order); a key nobody knows is not the certificate's."""
    try:
        csr_key = read_csr(load_csr(csr_der), cn_as_san=False).public_key  # PkiError
        issued = x509.load_der_x509_certificate(certificate_der)
        return same_key(csr_key, issued.public_key())
    except (PkiError, ValueError, UnsupportedAlgorithm):
        return False


def leaf_request(
    contents: CsrContents,
    order: Order,
    account_thumbprint: str,
    policy: PolicyConfig,
    issuer: Issuer,
    now: datetime,
    profile: Profile,
) -> LeafRequest:
    """The certificate to sign for `order` under `profile` from its CSR, or badCSR
    (naming the key types the profile allows) / malformed."""
    asked = {("dns", n) for n in contents.dns_names}
    asked |= {("ip", a) for a in contents.ip_addresses}
    common_name = contents.common_name
    if common_name:
        named = identifier_for_name(common_name)
        if _key(named.type, named.value) not in asked:
            raise AcmeProblem(
                ProblemType.BAD_CSR, f"the CSR common name {common_name} is not among its SANs"
            )
        common_name = named.value  # an address in its canonical text (RFC 5952 4)
    wanted = {_key(i.type, i.value) for i in order.identifiers}
    if asked != wanted:
        extra, missing = asked - wanted, wanted - asked
        raise AcmeProblem(
            ProblemType.BAD_CSR,
            "the CSR names must equal the order's identifiers"
            + (f"; not in the order: {_shown(extra)}" if extra else "")
            + (f"; missing: {_shown(missing)}" if missing else ""),
        )
    if jwk_thumbprint(contents.public_key) == account_thumbprint:
        raise AcmeProblem(ProblemType.BAD_CSR, "the CSR key must not be the account key")
    try:
        check_key(profile, contents.public_key)
    except PolicyError as exc:
        raise AcmeProblem(ProblemType.BAD_CSR, str(exc)) from None
    if common_name and len(common_name.encode()) > UB_COMMON_NAME:
        common_name = None  # RFC 5280 ub-common-name: the SAN alone names the subject
    not_before, not_after = order_window(order, policy, issuer, now, profile)
    dns_names = contents.dns_names
    if common_name in dns_names:  # the common name, if any, is also the first SAN
        dns_names = (common_name, *(n for n in dns_names if n != common_name))
    return LeafRequest(
        public_key=contents.public_key,
        dns_names=dns_names,
        ip_addresses=contents.ip_addresses,
        not_before=not_before,
        not_after=not_after,
        extended_key_usages=usages(profile),
        common_name=common_name,
    )


def order_window(
    order: Order, policy: PolicyConfig, issuer: Issuer, now: datetime, profile: Profile,
) -> tuple[datetime, datetime]:
    """(notBefore, notAfter) for `order`'s certificate (``issuance.certificate_window``
    with the order's request and today's policy, profile and intermediate), or malformed."""
    try:
        return certificate_window(order.not_before, order.not_after, now, policy,
                                  issuer.certificate.not_valid_after_utc, profile=profile)
    except PolicyError as exc:
        raise malformed(str(exc)) from None
