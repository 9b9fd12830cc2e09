"""ACME accounts (RFC 8555 7.3): create or find by key, update, deactivate, change key."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from acme_ca.authority import eab
from acme_ca.authority.audit import Auditor
from acme_ca.authority.grants import UNRESTRICTED, grant_of
from acme_ca.authority.limits import RateLimits
from acme_ca.clock import Clock
from acme_ca.domain.audit import AuditAction, account_actor
from acme_ca.domain.models import Account, AccountStatus
from acme_ca.domain.origin import set_actor
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed, unauthorized
from acme_ca.encoding import random_id
from acme_ca.errors import Conflict, NotFound, PkiError
from acme_ca.pki.goodkey import check_key_not_weak, check_rsa_exponent
from acme_ca.pki.keys import PublicKey
from acme_ca.store.base import Store

MAX_CONTACTS = 10
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


@dataclass(frozen=True, slots=True)
class AccountKey:
    """An acceptable public account key, with its canonical JWK and RFC 7638 thumbprint
    (api/jws.py parses it from a JWS; the authority stores and compares it)."""

    public_key: PublicKey
    jwk: str  # the required public members only, sorted, no whitespace (RFC 7638 3.2)
    thumbprint: str  # base64url(SHA-256(jwk)), no padding


def check_signing_key(key: PublicKey) -> None:
    """badPublicKey (RFC 8555 6.2) for a key whose signatures are too costly to check:
    an RSA exponent other than 65537 (pki/goodkey.py). api/jws.py calls it for every
    account key it parses, before verifying any signature by it; the rest of goodkey
    (Fermat, small factors, the blocklist) waits for newAccount and keyChange."""
    try:
        check_rsa_exponent(key)
    except PkiError as exc:
        raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, str(exc)) from None


def check_contacts(contact: Any) -> tuple[str, ...]:
    """RFC 8555 7.3: a list of mailto: URLs; no hfields, one address each."""
    if not isinstance(contact, list) or not all(isinstance(c, str) for c in contact):
        raise malformed("contact must be a list of strings")
    if len(contact) > MAX_CONTACTS:
        raise AcmeProblem(ProblemType.INVALID_CONTACT, f"at most {MAX_CONTACTS} contacts")
    for url in contact:
        scheme, _, address = url.partition(":")
        if scheme.lower() != "mailto":
            raise AcmeProblem(
                ProblemType.UNSUPPORTED_CONTACT, f"contact {url!r}: only mailto: URLs are supported"
            )
        if "?" in address or "," in address or not _EMAIL.fullmatch(address):
            raise AcmeProblem(
                ProblemType.INVALID_CONTACT,
                f"contact {url!r} is not a single email address without hfields",
            )
    return tuple(contact)


def not_usable(status: AccountStatus) -> AcmeProblem:
    """7.3.6: a POST or POST-as-GET from a deactivated (or revoked) account is 401
    unauthorized, not the 403 of every other unauthorized request."""
    return AcmeProblem(ProblemType.UNAUTHORIZED, f"account is {status.value}", status=401)


class KeyInUse(AcmeProblem):
    """keyChange to a key another account holds: 409, Location of that account (7.3.5)."""

    def __init__(self, account_id: str) -> None:
        super().__init__(
            ProblemType.MALFORMED, "the new key is already in use by an account", status=409
        )
        self.account_id = account_id


class AccountService:
    def __init__(self, store: Store, clock: Clock, *, terms_of_service: str | None,
                 blocked_keys: Collection[bytes] = frozenset(),
                 eab_required: bool = False, limits: RateLimits | None = None,
                 auditor: Auditor | None = None) -> None:
        self._store = store
        self._audit = auditor or Auditor(store, clock)
        self._clock = clock
        self._terms = terms_of_service
        self._blocked_keys = blocked_keys
        self._eab_required = eab_required
        self._limits = limits or RateLimits(store, clock)

    def _check_key(self, key: AccountKey) -> None:
        """RFC 8555 6.7 badPublicKey for a weak or blocklisted key (pki/goodkey.py), checked
        when a key is presented to become an account's key: newAccount and keyChange."""
        try:
            check_key_not_weak(key.public_key, self._blocked_keys)
        except PkiError as exc:
            raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, str(exc)) from None

    async def find_by_key(self, key: AccountKey) -> Account | None:
        try:
            return await self._store.find_account_by_thumbprint(key.thumbprint)
        except NotFound:
            return None

    async def new_account(
        self, key: AccountKey, payload: dict[str, Any],
        binding: Callable[[], eab.ExternalBinding | None] = lambda: None,
        *, address: str | None = None,
    ) -> tuple[Account, bool]:
        """newAccount (7.3): (account, created). An existing key returns its account
        (7.3.1), whatever binding it carries. A new one needs a valid External Account
        Binding (7.3.4) if the CA requires one, and binds the key it names if it has
        one: ``binding`` reads it from the request (api/jws.external_binding) only
        when an account is to be created. A new one spends from
        ``new_accounts_per_ip`` for ``address``, the client's (rateLimited, 6.6, when
        over it; the key's override when it has one)."""
        self._check_key(key)
        existing = await self.find_by_key(key)
        if existing is not None:
            self._check_usable(existing)
            return existing, False
        if payload.get("onlyReturnExisting") is True:
            raise AcmeProblem(
                ProblemType.ACCOUNT_DOES_NOT_EXIST, "no account exists with the provided key"
            )
        contact = check_contacts(payload.get("contact", []))
        agreed = payload.get("termsOfServiceAgreed", False)
        if not isinstance(agreed, bool):
            raise malformed("termsOfServiceAgreed must be a boolean")
        if self._terms and not agreed:
            raise AcmeProblem(
                ProblemType.USER_ACTION_REQUIRED,
                f"you must agree to the terms of service at {self._terms}",
                status=403,
                headers={"Link": f'<{self._terms}>;rel="terms-of-service"'},
                extra={"instance": self._terms},  # 6.7, 7.3.3: where the user acts
            )
        now = self._clock.now()
        external = binding()
        if external is None and self._eab_required:
            raise eab.required()
        eab_key = None if external is None else await eab.check(self._store, external, now)
        account = Account(
            id=random_id(),
            status=AccountStatus.VALID,
            jwk=key.jwk,
            thumbprint=key.thumbprint,
            contact=contact,
            terms_agreed=agreed,
            created_at=now,
            eab_kid=None if eab_key is None else eab_key.kid,
        )
        grant = UNRESTRICTED if eab_key is None else grant_of(eab_key)
        spent = await self._limits.new_account(address, grant)
        try:
            created = await self._store.create_account(account)
        except Conflict:
            await self._limits.refund(spent)
            winner = await self.find_by_key(key)
            if winner is not None:  # the same key registered concurrently: one account wins
                return winner, False
            if eab_key is None:
                raise
            # another account bound the key, or it was revoked, since it was checked
            problem = eab.unusable(await self._store.get_eab_key(eab_key.kid), now)
            raise problem or unauthorized(
                f"the external account key {eab_key.kid} could not be bound") from None
        except BaseException:  # no account was created: the spend is given back (6.6)
            await self._limits.refund(spent)
            raise
        await self._audit_creation(created, key)
        return created, True

    async def _audit_creation(self, account: Account, key: AccountKey) -> None:
        """The new account is who acts from now on (it created itself); the binding it
        carried, if any, is the use of that EAB key."""
        set_actor(account_actor(account.id))
        await self._audit.record(AuditAction.ACCOUNT_CREATED, details={
            "account": account.id, "thumbprint": key.thumbprint, "eab_kid": account.eab_kid})
        if account.eab_kid is not None:
            await self._audit.record(AuditAction.EAB_KEY_USED, details={
                "kid": account.eab_kid, "account": account.id})

    async def account_for_kid(self, account_id: str) -> Account:
        """The account a kid names, if it may still act (7.3.6: deactivated may not)."""
        try:
            account = await self._store.get_account(account_id)
        except NotFound:
            raise AcmeProblem(
                ProblemType.ACCOUNT_DOES_NOT_EXIST, "the account named by kid does not exist"
            ) from None
        self._check_usable(account)
        return account

    @staticmethod
    def _check_usable(account: Account) -> None:
        if account.status is not AccountStatus.VALID:
            raise not_usable(account.status)

    async def update(self, account: Account, payload: dict[str, Any]) -> Account:
        """POST to the account URL (7.3.2, 7.3.6): contact change or deactivation."""
        status = payload.get("status")
        contact: Sequence[str] | None = None
        if "contact" in payload:
            contact = check_contacts(payload["contact"])
        if status is not None and status != AccountStatus.DEACTIVATED.value:
            raise malformed('the only status a client may set is "deactivated"')
        if status is None and contact is None:
            return account
        try:
            updated = await self._store.update_account(
                account.id,
                expected_status=AccountStatus.VALID,
                status=AccountStatus.DEACTIVATED if status else None,
                contact=contact,
            )
        except Conflict:  # deactivated since it was read
            raise not_usable(AccountStatus.DEACTIVATED) from None
        if status:
            await self._audit.record(AuditAction.ACCOUNT_DEACTIVATED,
                                     details={"account": account.id})
        return updated

    async def change_key(self, account: Account, new_key: AccountKey) -> Account:
        """keyChange (7.3.5); 409 with the other account's id if the key is in use."""
        self._check_key(new_key)
        other = await self.find_by_key(new_key)
        if other is not None:
            raise KeyInUse(other.id)
        try:
            changed = await self._store.change_account_key(
                account.id,
                old_thumbprint=account.thumbprint,
                jwk=new_key.jwk,
                thumbprint=new_key.thumbprint,
            )
        except Conflict:
            other = await self.find_by_key(new_key)
            if other is not None:
                raise KeyInUse(other.id) from None
            raise unauthorized("the account changed during the key change") from None
        await self._audit.record(AuditAction.ACCOUNT_KEY_CHANGED, details={
            "account": account.id, "old_thumbprint": account.thumbprint,
            "new_thumbprint": new_key.thumbprint})
        return changed
