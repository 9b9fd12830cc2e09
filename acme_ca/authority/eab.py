"""External Account Binding (RFC 8555 7.3.4): the keys an operator hands to a team, and
the check of the binding a newAccount carries.

The operator creates a key (``acme-ca eab create``): a random key id and 32 random
bytes of HMAC key, shown once as base64url without padding, plus what the account it
binds may get (profiles, domains, rate limit overrides: ``grants.py``). The team's
client signs its account key with the HMAC key (``externalAccountBinding``, a
flattened JWS whose syntax ``api/jws.external_binding`` checks); ``check`` verifies
the MAC, in constant time, and that the key may still bind an account. The store
binds it in the account's own transaction (``WriteStore.create_account``): a key
binds one account.

The problem types, chosen after Pebble (wfe.go ``verifyEAB``) and step-ca
(acme/api/eab.go ``validateExternalAccountBinding``); Boulder has no EAB:

    no binding where one is required   externalAccountRequired  (all three)
    a binding that is not a JWS, a     malformed                (Pebble, step-ca)
      wrong alg, a nonce, another url
    an unknown key id                  unauthorized             (Pebble, step-ca)
    a MAC that does not verify         unauthorized             (Pebble; step-ca 500s)
    a payload that is not the account  unauthorized             (step-ca; Pebble
      key                                                        badPublicKey: the key
                                                                 is fine, the binding
                                                                 is not for it)
    a key already bound                unauthorized             (step-ca)
    a key revoked or expired           unauthorized             (neither has them)

The MAC is checked before the key's state is told, so that only the holder of the
HMAC key learns that a key was bound, revoked or has expired.

``EabKeys`` is what operators do to the keys (`acme-ca eab`, the dashboard): create and
revoke them, each recorded in the audit log with its key id and label, never its HMAC
key; the use of a key by newAccount is recorded by ``accounts.py``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from acme_ca.authority.audit import Auditor
from acme_ca.clock import Clock
from acme_ca.domain.audit import AuditAction
from acme_ca.domain.models import EabKey
from acme_ca.domain.problems import AcmeProblem, ProblemType, unauthorized
from acme_ca.encoding import b64url_decode, b64url_encode, random_id
from acme_ca.errors import NotFound
from acme_ca.store.policy import EabStore

# RFC 8555 7.3.4: "alg" MUST indicate a MAC-based algorithm (RFC 7518 3.2).
MAC_ALGORITHMS = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}
HMAC_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class ExternalBinding:
    """A newAccount's ``externalAccountBinding`` whose syntax has been checked (api/jws.py:
    an HS* alg, a kid, the newAccount url, no nonce, the outer JWS's key as payload),
    its MAC not yet verified."""

    kid: str
    alg: str
    signing_input: bytes
    mac: bytes


def new_key(label: str, now: datetime, *, profiles: tuple[str, ...] = (),
            domains: tuple[str, ...] = (), limits: tuple[tuple[str, str], ...] = (),
            valid_for: timedelta | None = None) -> EabKey:
    """A fresh key: a random key id and HMAC key; it expires ``valid_for`` from now.
    Neither text starts with "-", which a client's command line (certbot --eab-hmac-key
    KEY, lego --hmac KEY) would take for an option: a 1 in 64 draw is drawn again."""
    label = label.strip()
    if not label:
        raise ValueError("the label must not be empty")
    kid = random_id(16)
    hmac_key = random_id(HMAC_KEY_BYTES)
    return EabKey(kid=kid, label=label, hmac_key=b64url_decode(hmac_key), created_at=now,
                  profiles=profiles, domains=domains, limits=limits,
                  expires=None if valid_for is None else now + valid_for)


def hmac_key_text(key: EabKey) -> str:
    """The HMAC key as clients take it (certbot --eab-hmac-key, lego --hmac): base64url
    without padding."""
    return b64url_encode(key.hmac_key)


def required() -> AcmeProblem:
    return AcmeProblem(ProblemType.EXTERNAL_ACCOUNT_REQUIRED,
                       "this CA requires an external account binding in newAccount: ask "
                       "its operator for a key id and HMAC key (acme-ca eab create)",
                       status=403)  # Pebble's 403; step-ca says 400


# A key's state at a moment (``state``): what `acme-ca eab list` shows, and which
# refusal newAccount gets (``unusable``).
REVOKED, BOUND, EXPIRED, UNUSED = "revoked", "bound", "expired", "unused"


def state(key: EabKey, now: datetime) -> str:
    """The first of REVOKED, BOUND, EXPIRED that holds at ``now``, else UNUSED: a bound
    key that was revoked is revoked (its account opens no new order), a bound key that
    expired is bound (its account keeps working)."""
    if key.revoked_at is not None:
        return REVOKED
    if key.account_id is not None:
        return BOUND
    if key.expires is not None and key.expires <= now:
        return EXPIRED
    return UNUSED


def unusable(key: EabKey, now: datetime) -> AcmeProblem | None:
    """Why ``key`` may not bind a new account at ``now`` (its ``state``), or None."""
    kind = state(key, now)
    if kind == REVOKED:
        return unauthorized(f"the external account key {key.kid} ({key.label}) was revoked")
    if kind == BOUND:
        return unauthorized(f"the external account key {key.kid} is already bound to an "
                            "account; each key binds one account")
    if kind == EXPIRED and key.expires is not None:
        return unauthorized(f"the external account key {key.kid} expired at "
                            f"{key.expires.isoformat(timespec='seconds')}")
    return None


async def check(store: EabStore, binding: ExternalBinding, now: datetime) -> EabKey:
    """The key ``binding`` names, if its MAC verifies and it may bind an account now;
    unauthorized otherwise (see the module docstring for the order)."""
    try:
        key = await store.get_eab_key(binding.kid)
    except NotFound:
        raise unauthorized(f"the externalAccountBinding kid {binding.kid!r} is not an "
                           "external account key of this CA") from None
    expected = hmac.new(key.hmac_key, binding.signing_input,
                        MAC_ALGORITHMS[binding.alg]).digest()
    if not hmac.compare_digest(expected, binding.mac):
        raise unauthorized(f"the externalAccountBinding MAC does not verify with the "
                           f"external account key {binding.kid}: check the HMAC key")
    problem = unusable(key, now)
    if problem is not None:
        raise problem
    return key


class EabKeys:
    """An operator's actions on the keys, audited."""

    def __init__(self, store: EabStore, clock: Clock, auditor: Auditor) -> None:
        self._store = store
        self._clock = clock
        self._audit = auditor

    async def create(self, key: EabKey) -> EabKey:
        """Store ``key`` (from ``new_key``); the key as stored."""
        created = await self._store.create_eab_key(key)
        await self._audit.record(AuditAction.EAB_KEY_CREATED, details={
            "kid": created.kid, "label": created.label,
            "profiles": ",".join(created.profiles) or None,
            "domains": ",".join(created.domains) or None,
            "expires": None if created.expires is None else created.expires.isoformat()})
        return created

    async def revoke(self, kid: str) -> EabKey:
        """Revoke the key ``kid`` now (``NotFound``, ``Conflict`` as the store says);
        the key as revoked."""
        revoked = await self._store.revoke_eab_key(kid, self._clock.now())
        await self._audit.record(AuditAction.EAB_KEY_REVOKED, details={
            "kid": revoked.kid, "label": revoked.label, "account": revoked.account_id})
        return revoked
