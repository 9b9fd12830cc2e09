"""Does a CA certificate's nameConstraints extension permit a name? (RFC 5280 4.2.1.10)

Only the name forms the CA issues are checked: DNS names and IP addresses. A wildcard
is judged by the names it is valid for: permitted only if its base is, forbidden if an
excluded subtree holds its base or lies below it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from cryptography import x509

from acme_ca.config_values import at_or_under
from acme_ca.pki.profiles import IpAddress


def _dns_matches(name: str, constraint: str, *, excluded: bool) -> bool:
    """Does the DNS subtree `constraint` hold `name`? For a wildcard, its base name must be
    in a permitted subtree; an excluded subtree counts when it holds the base or lies at
    or below it, since the wildcard is then valid for names in it (RFC 6125 6.4.3) that
    verifiers, comparing the SAN "*.base" as a name, do not exclude."""
    constraint = constraint.lower().lstrip(".")
    lowered = name.lower()
    base = lowered.removeprefix("*.")
    if excluded and base != lowered and at_or_under(constraint, base):
        return True
    return not constraint or at_or_under(base, constraint)  # "" holds every name


def _matches(name: str | IpAddress, subtrees: Iterable[x509.GeneralName], *,
             excluded: bool = False) -> bool | None:
    """True/False if `subtrees` has constraints of the name's form, None if it has none."""
    relevant = False
    for tree in subtrees:
        if isinstance(name, str) and isinstance(tree, x509.DNSName):
            relevant = True
            if _dns_matches(name, tree.value, excluded=excluded):
                return True
        elif not isinstance(name, str) and isinstance(tree, x509.IPAddress):
            network = tree.value
            if isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network):
                relevant = True  # iPAddress is one name form, IPv4 and IPv6 alike
                if network.version == name.version and name in network:
                    return True
    return False if relevant else None


def first_forbidden(ca: x509.Certificate, names: Iterable[str | IpAddress]) -> str | None:
    """The first of `names` that the CA's name constraints forbid, or None."""
    try:
        constraints = ca.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    for name in names:
        if _matches(name, constraints.excluded_subtrees or (), excluded=True):
            return str(name)
        if _matches(name, constraints.permitted_subtrees or ()) is False:
            return str(name)
    return None
