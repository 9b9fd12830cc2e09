"""ACME orders (RFC 8555 7.4): create, read with an up-to-date status, finalize, download.

The status machine of 7.1.6:

    pending --(all authorizations valid)--> ready --(finalize)--> processing --> valid
       |                                      |                        |
       +-- an authorization fails, is deactivated or expires; the order expires;
           issuance fails ---------------------------------------------> invalid

pending -> ready happens in the store in the same transaction that makes the last
authorization valid; ready -> processing is a compare-and-set, so of several
concurrent finalize requests exactly one signs a certificate.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from ipaddress import ip_address
from typing import Any

from cryptography import x509

from acme_ca.authority import issuance
from acme_ca.authority.identifiers import (
    authorization_identifier,
    challenge_types,
    combined,
    parse_identifiers,
)
from acme_ca.clock import Clock
from acme_ca.config import PolicyConfig
from acme_ca.domain.models import (
    Account,
    Authorization,
    AuthorizationStatus,
    Challenge,
    Identifier,
    Order,
    OrderStatus,
)
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed, unauthorized
from acme_ca.errors import Conflict, NotFound, PkiError, PolicyError
from acme_ca.pki.constraints import first_forbidden
from acme_ca.pki.csr import load_csr, read_csr
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import jwk_thumbprint
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


def b64url_decode(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or "=" in text or "+" in text or "/" in text:
        raise malformed(f"{what} must be base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise malformed(f"{what} is not valid base64url") from None


def _unusable(authz: Authorization, now: datetime) -> str | None:
    """Why an order can no longer rely on this authorization (7.1.6), or None."""
    name = authz.identifier.value
    if authz.status not in (AuthorizationStatus.PENDING, AuthorizationStatus.VALID):
        return f"the authorization for {name} is {authz.status.value}"
    if authz.expires <= now:
        return f"the authorization for {name} expired"
    return None


class OrderService:
    page_size = ORDERS_PAGE

    def __init__(
        self,
        store: Store,
        clock: Clock,
        policy: PolicyConfig,
        issuer: Callable[[], Issuer],
        challenge_types: Sequence[str] = ("http-01",),
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self._issuer = issuer
        self._challenge_types = tuple(challenge_types)

    # --- newOrder ---------------------------------------------------------------------

    async def new_order(self, account: Account, payload: dict[str, Any]) -> Order:
        identifiers = parse_identifiers(
            payload.get("identifiers"), self._policy, self._challenge_types
        )
        self._check_name_constraints(identifiers)
        now = self._clock.now()
        not_before, not_after = self._requested_validity(payload, now)
        authorization_ids: list[str] = []
        new: list[Authorization] = []
        expires = now + self._policy.order_lifetime
        all_valid = True
        for identifier in identifiers:
            base, wildcard = authorization_identifier(identifier)
            reused = await self._store.find_reusable_authorization(
                account.id, base, wildcard, now
            )
            if reused is not None:
                authorization_ids.append(reused.id)
                expires = min(expires, reused.expires)
                continue
            all_valid = False
            authz = self._new_authorization(account, identifier, now)
            new.append(authz)
            authorization_ids.append(authz.id)
            expires = min(expires, authz.expires)
        order = Order(
            id=secrets.token_urlsafe(12),
            account_id=account.id,
            status=OrderStatus.READY if all_valid else OrderStatus.PENDING,
            identifiers=identifiers,
            authorization_ids=tuple(authorization_ids),
            expires=expires,
            created_at=now,
            not_before=not_before,
            not_after=not_after,
        )
        return await self._store.create_order(order, new)

    def _check_name_constraints(self, identifiers: Sequence[Identifier]) -> None:
        """Refuse, before anything is validated, names the intermediate could not certify:
        a certificate for them would not verify (RFC 5280 4.2.1.10)."""
        intermediate = self._issuer().certificate
        problems = []
        for identifier in identifiers:
            name = identifier.value if identifier.type == "dns" else ip_address(identifier.value)
            if first_forbidden(intermediate, [name]) is not None:
                problems.append(AcmeProblem(
                    ProblemType.REJECTED_IDENTIFIER,
                    f"{identifier.value} is outside the intermediate CA's name constraints",
                    identifier=identifier))
        if problems:
            raise combined(problems)

    def _new_authorization(
        self, account: Account, identifier: Identifier, now: datetime
    ) -> Authorization:
        base, wildcard = authorization_identifier(identifier)
        authz_id = secrets.token_urlsafe(12)
        challenges = tuple(
            Challenge(
                id=secrets.token_urlsafe(12),
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
        self, payload: dict[str, Any], now: datetime
    ) -> tuple[datetime | None, datetime | None]:
        not_before = parse_time(payload, "notBefore")
        not_after = parse_time(payload, "notAfter")
        start = not_before or now
        if not_before is not None and not_before < now - self._policy.backdate:
            raise malformed("notBefore is in the past")
        if not_after is not None:
            if not_after <= start:
                raise malformed("notAfter must be later than notBefore and now")
            if not_after - start > self._policy.max_validity:
                raise malformed(
                    f"the requested validity exceeds the maximum of {self._policy.max_validity}"
                )
        elif not_before is not None and not_before > now + self._policy.order_lifetime:
            raise malformed("notBefore is too far in the future")
        return not_before, not_after

    # --- reading ----------------------------------------------------------------------

    async def get_order(self, account: Account, order_id: str) -> Order:
        try:
            order = await self._store.get_order(order_id)
        except NotFound:
            raise malformed("no such order", status=404) from None
        if order.account_id != account.id:
            raise unauthorized("this order belongs to another account")
        return await self.refresh(order)

    async def refresh(self, order: Order) -> Order:
        """Apply what time and authorization changes imply: expiry and failure -> invalid."""
        if order.status not in (OrderStatus.PENDING, OrderStatus.READY):
            return order
        now = self._clock.now()
        reason = None
        if order.expires <= now:
            reason = "the order expired"
        else:
            for authz_id in order.authorization_ids:
                reason = _unusable(await self._store.get_authorization(authz_id), now)
                if reason:
                    break
        if reason is None:
            return order
        problem = AcmeProblem(
            ProblemType.MALFORMED if "expired" in reason else ProblemType.UNAUTHORIZED, reason
        )
        try:
            return await self._store.update_order_status(
                order.id, expected=order.status, status=OrderStatus.INVALID, error=problem.dumps()
            )
        except Conflict:
            return await self._store.get_order(order.id)

    async def list_orders(self, account: Account, after: str | None) -> list[str]:
        return await self._store.list_account_orders(account.id, limit=ORDERS_PAGE, after=after)

    # --- finalize ---------------------------------------------------------------------

    async def finalize(self, account: Account, order_id: str, payload: dict[str, Any]) -> Order:
        order = await self.get_order(account, order_id)
        csr_der = b64url_decode(payload.get("csr"), "csr")
        if order.status is not OrderStatus.READY:
            return await self._not_ready(order, csr_der)
        request = self._check_csr(account, order, csr_der)
        issuer = self._issuer()
        record, request = issuance.reservation(
            issuer, request, self._clock.now(), account_id=account.id, order_id=order.id
        )
        try:
            order = await self._store.start_issuance(order.id, record)
        except Conflict:
            return await self._not_ready(await self._store.get_order(order.id), csr_der)
        try:
            certificate, order = await issuance.sign_for_order(
                self._store, issuer, request, record
            )
        except Exception as exc:
            log.exception("issuance for order %s failed", order.id)
            problem = AcmeProblem(ProblemType.SERVER_INTERNAL, "issuance failed", status=500)
            with contextlib.suppress(Conflict):
                await self._store.update_order_status(
                    order.id,
                    expected=OrderStatus.PROCESSING,
                    status=OrderStatus.INVALID,
                    error=problem.dumps(),
                )
            raise problem from exc
        log.info(
            "order %s: certificate %x for %s",
            order.id,
            certificate.serial_number,
            ", ".join(i.value for i in order.identifiers),
        )
        return order

    async def _not_ready(self, order: Order, csr_der: bytes) -> Order:
        """A finalize on an order that is not ready. An identical re-finalize of a valid
        order gets the order (some clients poll through finalize); the rest orderNotReady."""
        if order.status is OrderStatus.VALID and order.certificate_serial:
            record = await self._store.get_certificate(order.certificate_serial)
            try:
                csr_key = read_csr(load_csr(csr_der), cn_as_san=False).public_key  # PkiError
                issued = x509.load_der_x509_certificate(record.der or b"")
                same_key = jwk_thumbprint(csr_key) == jwk_thumbprint(  # type: ignore[arg-type]
                    issued.public_key()
                )  # type: ignore[arg-type]
            except (PkiError, ValueError):
                same_key = False
            if same_key:
                return order
        raise AcmeProblem(
            ProblemType.ORDER_NOT_READY,
            f"the order is {order.status.value}, not ready",
            headers={"Retry-After": "1"} if order.status is OrderStatus.PROCESSING else None,
        )

    def _check_csr(self, account: Account, order: Order, csr_der: bytes) -> LeafRequest:
        try:
            contents = read_csr(load_csr(csr_der), cn_as_san=False)
        except PkiError as exc:
            raise AcmeProblem(ProblemType.BAD_CSR, str(exc)) from None
        wanted = {i.value for i in order.identifiers}
        asked = set(contents.dns_names) | {str(a) for a in contents.ip_addresses}
        if contents.common_name and contents.common_name not in asked:
            raise AcmeProblem(
                ProblemType.BAD_CSR,
                f"the CSR common name {contents.common_name} is not among its SANs",
            )
        if asked != wanted:
            extra = sorted(asked - wanted)
            missing = sorted(wanted - asked)
            raise AcmeProblem(
                ProblemType.BAD_CSR,
                "the CSR names must equal the order's identifiers"
                + (f"; not in the order: {', '.join(extra)}" if extra else "")
                + (f"; missing: {', '.join(missing)}" if missing else ""),
            )
        if jwk_thumbprint(contents.public_key) == account.thumbprint:
            raise AcmeProblem(ProblemType.BAD_CSR, "the CSR key must not be the account key")
        now = self._clock.now()
        if order.not_after is not None:  # the client asked for a window (7.1.3): honour it
            not_before = order.not_before or now - self._policy.backdate
            not_after = min(order.not_after, self._issuer().certificate.not_valid_after_utc)
        else:
            try:
                not_before, not_after = issuance.validity_window(
                    order.not_before or now, self._policy.default_validity,
                    self._policy.max_validity, self._policy.backdate, self._issuer())
            except PolicyError as exc:
                raise AcmeProblem(ProblemType.BAD_CSR, str(exc)) from None
        cn = contents.common_name
        dns_names = contents.dns_names
        if cn in dns_names:  # the common name, if any, is also the first SAN
            dns_names = (cn, *(n for n in dns_names if n != cn))
        return LeafRequest(
            public_key=contents.public_key,
            dns_names=dns_names,
            ip_addresses=contents.ip_addresses,
            not_before=not_before,
            not_after=not_after,
            common_name=cn,
        )

    # --- certificates -------------------------------------------------------------------

    async def certificate_pem(self, account: Account, serial: str, alternate: int = 0) -> bytes:
        """The leaf then the intermediate (application/pem-certificate-chain, 7.4.2)."""
        try:
            record = await self._store.get_certificate(serial)
        except NotFound:
            raise malformed("no such certificate", status=404) from None
        if record.der is None:
            raise malformed("no such certificate", status=404)
        if record.account_id != account.id:
            raise unauthorized("this certificate belongs to another account")
        issuer = self._issuer()
        if not 0 <= alternate <= len(issuer.alternates):
            raise malformed("no such alternate chain", status=404)
        return issuer.chain_pem(x509.load_der_x509_certificate(record.der), alternate)

    def alternate_count(self) -> int:
        return len(self._issuer().alternates)
