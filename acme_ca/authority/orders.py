"""ACME orders (RFC 8555 7.4): create, read with an up-to-date status, finalize, download.

The status machine of 7.1.6:

    pending --(all authorizations valid)--> ready --(finalize)--> processing --> valid
       |                                      |                        |
       +-- an authorization fails, is deactivated or expires; the order expires;
           issuance fails ---------------------------------------------> invalid

What follows from what is decided by ``domain/states.py``: pending -> ready happens in
the store in the same transaction that makes the last authorization valid, and again
here when an order is read (``_refreshed``: time passes without any write, and a
reader repairs what a write left); ready -> processing is a compare-and-set, so of
several concurrent finalize requests exactly one signs a certificate.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from cryptography import x509

from acme_ca.authority import finalize_checks, issuance
from acme_ca.authority.audit import Auditor
from acme_ca.authority.caa_recheck import CaaRecheck
from acme_ca.authority.grants import Grant, grant_for
from acme_ca.authority.identifiers import (
    authorization_identifier,
    challenge_types,
    parse_identifiers,
)
from acme_ca.authority.limits import Charge, RateLimits
from acme_ca.authority.profiles import Catalog
from acme_ca.authority.renewal_info import RenewalInfo, already_replaced
from acme_ca.clock import Clock
from acme_ca.config import PolicyConfig
from acme_ca.config_policy import Profile
from acme_ca.domain.models import (
    Account,
    Authorization,
    AuthorizationStatus,
    Challenge,
    Identifier,
    Order,
    OrderStatus,
)
from acme_ca.domain.problems import AcmeProblem, ProblemType, b64url_field, malformed, unauthorized
from acme_ca.domain.states import OPEN_ORDER, OrderChange, expiry_problem, order_change
from acme_ca.encoding import random_id
from acme_ca.errors import (
    AlreadyReplaced,
    CeilingReached,
    Conflict,
    LimitReached,
    NotFound,
    PkiError,
    PolicyError,
    StoreError,
    StoreUnavailable,
)
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import LeafRequest
from acme_ca.store.base import Store

log = logging.getLogger(__name__)

ORDERS_PAGE = 100


def parse_time(payload: dict[str, Any], name: str) -> datetime | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise malformed(f"{name} must be an RFC 3339 date-time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise malformed(f"{name} {value!r} is not an RFC 3339 date-time") from None
    if parsed.tzinfo is None:
        raise malformed(f"{name} {value!r} has no time zone")
    return parsed


class OrderService:
    page_size = ORDERS_PAGE

    def __init__(
        self,
        store: Store,
        clock: Clock,
        policy: PolicyConfig,
        issuer: Callable[[], Issuer],
        challenge_types: Sequence[str] = ("http-01",),
        caa_recheck: CaaRecheck | None = None,
        in_flight: issuance.InFlight | None = None,
        limits: RateLimits | None = None,
        *,
        profiles: Catalog,
        renewal_info: RenewalInfo,
        auditor: Auditor | None = None,
    ) -> None:
        self._store = store
        self._audit = auditor or Auditor(store, clock)  # the certificates it issues
        self._clock = clock
        self._policy = policy
        self._profiles = profiles
        self._issuer = issuer
        self._challenge_types = tuple(challenge_types)
        self._in_flight = issuance.InFlight() if in_flight is None else in_flight
        self._caa_recheck = caa_recheck  # None when CAA is off
        self._limits = limits or RateLimits(store, clock)
        self._renewal_info = renewal_info  # ARI: the checks of "replaces"

    # --- newOrder ---------------------------------------------------------------------

    async def new_order(self, account: Account, payload: dict[str, Any]) -> Order:
        """RFC 8555 7.4, with the profile of draft-ietf-acme-profiles 4: the one named,
        else the default (``profiles.Catalog.for_new_order``), its identifier types and
        domains, and the account's grant's domains, checked with the CA's policy."""
        now = self._clock.now()
        grant = await grant_for(self._store, account, now)
        issuer = self._issuer()  # once: a reload meanwhile must not mix intermediates
        asked = payload.get("profile")
        profile = self._profiles.for_new_order(asked, grant)
        identifiers = parse_identifiers(
            payload.get("identifiers"), self._policy, self._challenge_types,
            issuer.certificate, profile=profile, grant=grant, profile_named=asked is not None,
        )
        not_before, not_after = self._requested_validity(payload, now, issuer, profile)
        replacing = await self._renewal_info.replacement(  # RFC 9773 5
            account, identifiers, payload.get("replaces"))
        # rateLimited (6.6) before the reads of reuse and CAA
        charge = await self._limits.new_order(account, grant, identifiers,
                                              exempt=bool(replacing and replacing.exempt))
        authorization_ids: list[str] = []
        new: list[Authorization] = []
        expires = now + self._policy.order_lifetime
        reusing: list[Authorization] = []
        for identifier in identifiers:
            base, wildcard = authorization_identifier(identifier)
            reused = await self._store.find_reusable_authorization(
                account.id, base, wildcard, now
            )
            if reused is not None:
                reusing.append(reused)
                authorization_ids.append(reused.id)
                expires = min(expires, reused.expires)
                continue
            authz = self._new_authorization(account, identifier, now)
            new.append(authz)
            authorization_ids.append(authz.id)
            expires = min(expires, authz.expires)
        if self._caa_recheck is not None:  # CAA again for reuse past 8 hours (caa_recheck)
            await self._caa_recheck.check(reusing, now)
        order = Order(
            id=random_id(),
            account_id=account.id,
            status=OrderStatus.PENDING,
            identifiers=identifiers,
            authorization_ids=tuple(authorization_ids),
            expires=expires if not_after is None else min(expires, not_after),  # 7.1.3
            created_at=now,
            not_before=not_before,
            not_after=not_after,
            profile=profile.name,
            replaces=None if replacing is None else replacing.serial,
        )
        change = order_change(order, [*reusing, *new], now)  # all reused: ready at once
        if change is not None:
            order = replace(order, status=change.status, error=change.error)
        ceiling = self._limits.pending_ceiling(grant)
        try:  # the ceiling, then new_orders_per_account, in the order's own write
            return await self._store.create_order(
                order, new, pending_ceiling=ceiling,
                spend=None if charge is None else charge.store)
        except CeilingReached as exc:
            raise self._limits.pending_refused(exc.pending, exc.first_expires, len(new),
                                               ceiling or 0) from None
        except LimitReached as exc:
            assert charge is not None  # only a spend is refused
            raise self._limits.refused(charge, exc.retry_at, exc.resets_at) from None
        except AlreadyReplaced:  # another order replaces it meanwhile (RFC 9773 5)
            raise already_replaced(order.replaces or "") from None

    def _new_authorization(
        self, account: Account, identifier: Identifier, now: datetime
    ) -> Authorization:
        base, wildcard = authorization_identifier(identifier)
        authz_id = random_id()
        challenges = tuple(
            Challenge(
                id=random_id(),
                authorization_id=authz_id,
                type=kind,
                token=secrets.token_urlsafe(32),
            )
            for kind in challenge_types(identifier, self._challenge_types)
        )
        return Authorization(
            id=authz_id,
            account_id=account.id,
            identifier=base,
            wildcard=wildcard,
            status=AuthorizationStatus.PENDING,
            expires=now + self._policy.authorization_lifetime,
            created_at=now,
            challenges=challenges,
        )

    def _requested_validity(
        self, payload: dict[str, Any], now: datetime, issuer: Issuer, profile: Profile
    ) -> tuple[datetime | None, datetime | None]:
        """The notBefore/notAfter asked for (7.1.3), if this request may ask for them:
        not in the past, not longer than the profile's max_validity, and a certificate
        signable now for them (``issuance.certificate_window``); malformed otherwise."""
        policy = self._policy
        not_before = parse_time(payload, "notBefore")
        not_after = parse_time(payload, "notAfter")
        if not_before is not None and not_before < now - policy.backdate:
            raise malformed("notBefore is in the past")
        if not_after is not None and not_after - (not_before or now) > profile.max_validity:
            raise malformed(f"the requested validity exceeds the maximum of profile "
                            f"{profile.name}, {profile.max_validity}")
        if not_after is None and not_before is not None and (
                not_before > now + policy.order_lifetime):
            raise malformed("notBefore is too far in the future")
        try:
            issuance.certificate_window(not_before, not_after, now, policy,
                                        issuer.certificate.not_valid_after_utc,
                                        profile=profile)
        except PolicyError as exc:
            raise malformed(str(exc)) from None
        return not_before, not_after

    # --- reading ----------------------------------------------------------------------

    async def get_order(self, account: Account, order_id: str) -> Order:
        order, _ = await self._current(account, order_id)
        return order

    async def _current(
        self, account: Account, order_id: str
    ) -> tuple[Order, list[Authorization]]:
        """The account's order with an up-to-date status, and, when it is still pending
        or ready, its authorizations as read to decide that (finalize needs them again)."""
        try:
            order = await self._store.get_order(order_id)
        except NotFound:
            raise malformed("no such order", status=404) from None
        if order.account_id != account.id:
            raise unauthorized("this order belongs to another account")
        return await self._refreshed(order)

    async def _refreshed(self, order: Order) -> tuple[Order, list[Authorization]]:
        """Apply what time and the authorizations imply (``states.order_change``): a
        pending order whose authorizations are all valid becomes ready, an expired one or
        one with an unusable authorization invalid, each through a compare-and-set. The
        authorizations read come back with the order if it stays pending or ready."""
        if order.status not in OPEN_ORDER:
            return order, []
        now = self._clock.now()
        expired = expiry_problem(order, now)
        if expired is not None:  # decided without reading its authorizations
            authorizations: list[Authorization] = []
            change: OrderChange | None = OrderChange(OrderStatus.INVALID, expired.dumps())
        else:
            listed = order.authorization_ids
            authorizations = sorted(await self._store.order_authorizations(order.id),
                                    key=lambda authz: listed.index(authz.id))
            change = order_change(order, authorizations, now)
        if change is None:
            return order, authorizations
        try:
            order = await self._store.update_order_status(
                order.id, expected=order.status, status=change.status, error=change.error)
        except Conflict:  # changed meanwhile (a validation, another request): again
            return await self._refreshed(await self._store.get_order(order.id))
        return order, authorizations if order.status in OPEN_ORDER else []

    async def list_orders(self, account: Account, after: str | None) -> list[str]:
        return await self._store.list_account_orders(account.id, limit=ORDERS_PAGE, after=after)

    # --- finalize ---------------------------------------------------------------------

    async def finalize(self, account: Account, order_id: str, payload: dict[str, Any]) -> Order:
        """Check the CSR, then issue: reserve the serial (the order PROCESSING), sign,
        store (VALID) or fail (INVALID). The issuance runs to its end even when this call
        is cancelled (``issuance.InFlight`` says why); ``drain`` waits for it. The order
        comes back as it ended: valid, or invalid if a sweeper ended it meanwhile
        (``issuance.sign_for_order``). The intermediate is read once: what signs is
        what the policy, the CSR and the window were checked against, whatever a reload
        does meanwhile. certificates_per_names is spent as the issuance starts, in
        ``start_issuance``'s write (rateLimited leaves the order ready; a finalize that
        loses the order to another spends nothing), and refunded if no certificate comes
        of it."""
        order, authorizations = await self._current(account, order_id)
        csr_der = b64url_field(payload.get("csr"), "csr")
        if order.status is not OrderStatus.READY:
            return await self._not_ready(order, csr_der)
        issuer = self._issuer()
        grant = await grant_for(self._store, account, self._clock.now())
        profile = await self._check_policy(order, issuer, grant)
        request = finalize_checks.csr_request(csr_der, order, account.thumbprint, self._policy,
                                              issuer, self._clock.now(), profile)
        if self._caa_recheck is not None:  # CAA again, validated over 8 hours ago (caa_recheck)
            await self._caa_recheck.check(authorizations, self._clock.now())
        # certificates_per_names, authoritative in start_issuance (6.6), unless ARI
        exempt = await self._renewal_info.exempt(order.replaces, order.identifiers)
        charge = self._limits.issuance(grant, order.identifiers, exempt=exempt)
        return await self._in_flight.run(
            order.id, self._issue(order, request, csr_der, issuer, charge))

    async def drain(self, limit: float | None = None) -> None:
        """Wait for the issuances in flight (at shutdown, before the store closes), at
        most ``limit`` seconds (None: ``issuance.DRAIN_LIMIT``)."""
        await self._in_flight.drain(limit)

    async def _issue(
        self, order: Order, request: LeafRequest, csr_der: bytes, issuer: Issuer,
        charge: Charge | None,
    ) -> Order:
        """Start the issuance, spending ``charge`` in the same write, then sign; the
        charge is refunded if no certificate comes of an issuance this call started, and
        kept when the database went away meanwhile (whether the certificate was stored
        is the sweeper's to find out)."""
        record, request = issuance.reservation(
            issuer, request, self._clock.now(), profile=order.profile,
            account_id=order.account_id, order_id=order.id,
        )
        try:
            await self._store.start_issuance(
                order.id, record, spend=None if charge is None else charge.store)
        except Conflict:  # another finalize started it: this one spent nothing
            return await self._not_ready(await self._store.get_order(order.id), csr_der)
        except LimitReached as exc:  # nothing written: the order stays ready
            assert charge is not None  # only a spend is refused
            raise self._limits.refused(charge, exc.retry_at, exc.resets_at) from None
        try:
            issued = await issuance.sign_for_order(self._store, issuer, request, record,
                                                  self._audit)
        except StoreUnavailable:  # stored or not, the sweeper will say: the spend stays
            raise
        except Exception:
            await self._refund(charge)
            raise
        if issued.status is not OrderStatus.VALID:
            await self._refund(charge)
        return issued

    async def _refund(self, charge: Charge | None) -> None:
        """Give back what finalize spent when no certificate came of the issuance (a
        store out of reach only loses the refund: a warning says so)."""
        try:
            await self._limits.refund(charge)
        except StoreError as exc:
            log.warning("certificates_per_names not refunded: %s", exc)

    async def _not_ready(self, order: Order, csr_der: bytes) -> Order:
        """A finalize on an order that is not ready. An identical re-finalize of a valid
        order gets the order (some clients poll through finalize); the rest orderNotReady."""
        if order.status is OrderStatus.VALID and order.certificate_serial:
            record = await self._store.get_certificate(order.certificate_serial)
            if finalize_checks.same_key_as(csr_der, record.der or b""):
                return order
        raise AcmeProblem(
            ProblemType.ORDER_NOT_READY,
            f"the order is {order.status.value}, not ready",
            headers={"Retry-After": "1"} if order.status is OrderStatus.PROCESSING else None,
        )

    async def _check_policy(self, order: Order, issuer: Issuer, grant: Grant) -> Profile:
        """The order's profile and the identifier policy again
        (``finalize_checks.order_profile``): a refusal makes the ready order invalid,
        with the problem as its error, then is raised."""
        try:
            return finalize_checks.order_profile(order, self._policy, issuer, self._profiles,
                                                 grant)
        except AcmeProblem as refused:
            problem = refused
        with contextlib.suppress(Conflict):  # changed meanwhile: this request is refused still
            await self._store.update_order_status(
                order.id, expected=OrderStatus.READY, status=OrderStatus.INVALID,
                error=problem.dumps())
        log.info("order %s: invalid at finalize, policy now refuses it: %s",
                 order.id, problem.detail)
        raise problem

    # --- certificates -------------------------------------------------------------------

    async def certificate_chains(self, account: Account, serial: str) -> tuple[bytes, ...]:
        """The leaf then the intermediate that signed it (application/pem-certificate-chain,
        7.4.2), even after the intermediate was renewed: the default chain first, then any
        alternates."""
        try:
            record = await self._store.get_certificate(serial)
        except NotFound:
            raise malformed("no such certificate", status=404) from None
        if record.der is None:
            raise malformed("no such certificate", status=404)
        if record.account_id != account.id:
            raise unauthorized("this certificate belongs to another account")
        leaf = x509.load_der_x509_certificate(record.der)
        try:
            return self._issuer().chain_pems(leaf, record.issuer)
        except PkiError as exc:
            log.error("certificate %s: %s", serial, exc)
            raise AcmeProblem(
                ProblemType.SERVER_INTERNAL, "the chain of this certificate is missing", status=500
            ) from None
