"""What an account may get beyond the CA's own policy: the restrictions of the External
Account Binding key it was created with (RFC 8555 7.3.4), in one value.

An account without a key gets ``UNRESTRICTED``: every profile the CA offers, every name
its policy allows, the [limits] as configured. An account created with a key inherits
the key's profiles, domains and limit overrides, and may open no new order once the
key is revoked. Profiles (``authority/profiles.py``), identifiers
(``authority/identifiers.py``) and rate limits (``authority/limits.py``) read it;
only ``grant_for`` makes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from acme_ca.config_policy import Limit
from acme_ca.domain.models import Account
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
    """The account's grant; unauthorized (an ``AcmeProblem``) when its key is revoked."""
    if account.eab_kid is None:
        return UNRESTRICTED
    raise NotImplementedError  # issue 11, EAB: to be written
