"""Certificate profiles (draft-ietf-acme-profiles): which profile an order gets, and what
a certificate issued under it may hold.

The directory offers every profile not retired (draft section 3, ``meta.profiles``). A
newOrder names one in ``profile`` (section 4) or gets ``[acme] default_profile``; an
account whose External Account Binding grant restricts profiles and does not allow the
default gets the grant's first that the CA still issues under. A profile unknown,
retired or outside the grant is invalidProfile (sections 4 and 6.3), at newOrder and
again at finalize ("a profile the CA is no longer willing to issue under").

The profile decides the certificate: its extended key usages, its validity (the
default, and the most a newOrder notBefore/notAfter may ask), the key types a CSR may
carry and the identifiers it may name (``identifiers.check_identifiers`` applies them).
``acme-ca sign-csr --profile`` uses the same definitions (``Catalog.in_use``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from acme_ca.authority.grants import UNRESTRICTED, Grant
from acme_ca.config import Config
from acme_ca.config_policy import DEFAULT_PROFILE, Profile
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed
from acme_ca.errors import PolicyError
from acme_ca.pki.keys import PublicKey, describe_key

# RFC 5280 4.2.1.12: the extended key usages a profile names, as the certificate holds them.
USAGE_OIDS: Mapping[str, x509.ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
}
_RSA_SIZES = (4096, 3072, 2048)  # "rsaN": N bits up to the next size named (KEY_TYPES)
_CURVES = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}
# The most of a requested profile name a refusal repeats (a configured one has 63 at most).
SHOWN_NAME = 64


def key_type(key: PublicKey) -> str | None:
    """The ``key_types`` name of a CSR's key ("ecdsa-p256", "rsa3072", ...), or None."""
    if isinstance(key, rsa.RSAPublicKey):
        size = next((s for s in _RSA_SIZES if key.key_size >= s), None)
        return None if size is None else f"rsa{size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return _CURVES.get(key.curve.name)
    return None


def usages(profile: Profile) -> tuple[x509.ObjectIdentifier, ...]:
    """The extended key usages a certificate under ``profile`` carries."""
    return tuple(USAGE_OIDS[name] for name in profile.extended_key_usages)


class ProfileRefused(PolicyError):
    """A profile the CA does not issue under (for this account): invalidProfile in ACME."""

    def problem(self) -> AcmeProblem:
        return AcmeProblem(ProblemType.INVALID_PROFILE, str(self))


def check_key(profile: Profile, key: PublicKey) -> None:
    """PolicyError unless the key is of a type ``profile`` allows (badCSR in ACME)."""
    if key_type(key) not in profile.key_types:
        raise PolicyError(f"a {describe_key(key)} key is not allowed by profile "
                          f"{profile.name} (allowed: {', '.join(profile.key_types)})")


@dataclass(frozen=True, slots=True)
class Catalog:
    """The configured profiles and the one an order naming none gets."""

    profiles: Mapping[str, Profile]
    default: str = DEFAULT_PROFILE

    @classmethod
    def from_config(cls, config: Config) -> Catalog:
        """[profiles.NAME] over the defaults and [acme] default_profile, as
        ``load_config`` read them."""
        return cls(config.profiles, config.acme.default_profile)

    def offered(self) -> dict[str, str]:
        """``meta.profiles``: name -> description, the retired left out (draft 3)."""
        return {name: p.description for name, p in sorted(self.profiles.items())
                if not p.retired}

    def for_new_order(self, asked: Any, grant: Grant) -> Profile:
        """The profile of a new order: the one asked for (a string), else the default,
        else, when the grant does not allow the default, the grant's first that exists and
        is not retired; invalidProfile if it is unknown, retired or outside the grant
        (draft 4)."""
        if asked is None:
            name = self.default
            if grant.profiles and name not in grant.profiles:
                usable = [n for n in grant.profiles
                          if n in self.profiles and not self.profiles[n].retired]
                name = (usable or grant.profiles)[0]
        elif isinstance(asked, str):
            name = asked
        else:
            raise malformed("profile must be a string (draft-ietf-acme-profiles 4)")
        try:
            return self.in_use(name, grant)
        except ProfileRefused as refused:
            raise refused.problem() from None

    def in_use(self, name: str, grant: Grant = UNRESTRICTED) -> Profile:
        """``name``'s profile if the CA still issues under it, for this grant (newOrder,
        finalize, sign-csr); ProfileRefused otherwise."""
        profile = self.profiles.get(name)
        shown = name if len(name) <= SHOWN_NAME else name[:SHOWN_NAME - 3] + "..."
        if profile is None or profile.retired:
            state = "unknown" if profile is None else "retired"
            offered = ", ".join(self.offered()) or "none"
            raise ProfileRefused(f"profile {shown!r} is {state} (offered: {offered})")
        if grant.profiles and name not in grant.profiles:
            raise ProfileRefused(f"this account may not use profile {shown!r} (its External "
                                 f"Account Binding allows: {', '.join(grant.profiles)})")
        return profile
