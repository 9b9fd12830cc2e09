"""What an account may get beyond the CA's own policy: the restrictions of the External
Account Binding key it was created with (RFC 8555 7.3.4), in one value.

An account without a key gets ``UNRESTRICTED``: every profile the CA offers, every name
its policy allows, the [limits] as configured. An account created with a key inherits
the key's profiles, domains and limit overrides, and may open no new order once the
key is revoked. Profiles (``authority/profiles.py``), identifiers
(``authority/identifiers.py``) and rate limits (``authority/limits.py``) read it;
only ``grant_of`` makes one from a key (``grant_for``, and newAccount's limits before
the account exists).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from acme_ca.config_policy import Limit, parse_limit_setting
from acme_ca.domain.models import Account, EabKey
from acme_ca.domain.problems import unauthorized
from acme_ca.store.policy import EabStore


@dataclass(frozen=True, slots=True)
class Grant:
    """``profiles`` and ``domains`` empty: no restriction beyond the CA's. ``limits``:
    the key's overrides of [limits], by limit name (None: unlimited)."""

    profiles: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    limits: Mapping[str, Limit | int | None] = field(default_factory=dict)
    eab_kid: str | None = None


UNRESTRICTED = Grant()


async def grant_for(store: EabStore, account: Account, now: datetime) -> Grant:
    """The account's grant; unauthorized (an ``AcmeProblem``) when its key is revoked
    (by ``now``). A key that expired after it bound the account still grants: expiry
    only ends the time in which a key may bind one."""
    if account.eab_kid is None:
        return UNRESTRICTED
    key = await store.get_eab_key(account.eab_kid)
    if key.revoked_at is not None and key.revoked_at <= now:
        raise unauthorized(f"the external account key {key.kid} ({key.label}) this account "
                           "was created with was revoked: it may open no new orders")
    return grant_of(key)


def grant_of(key: EabKey) -> Grant:
    """What the account ``key`` binds may get: its profiles, domains and limits."""
    return Grant(profiles=key.profiles, domains=key.domains,
                 limits=key_limits(key), eab_kid=key.kid)


def key_limits(key: EabKey) -> dict[str, Limit | int | None]:
    """The key's overrides of [limits]; the command line checked them with
    ``config_policy.parse_limit_setting`` when the key was made."""
    return {name: parse_limit_setting(name, text) for name, text in key.limits}
