"""Route handlers: verify the JWS, call the authority, render the resource.

Every POST goes through `_verified`, the one entry to the JWS pipeline; handlers
never touch the store or the PKI directly.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

from acme_ca.api import views
from acme_ca.api.context import Services, services_of
from acme_ca.api.jwk import stored_account_key
from acme_ca.api.jws import (
    VerifiedRequest,
    external_binding,
    verify_jws,
    verify_key_change_inner,
)
from acme_ca.authority.accounts import AccountKey, KeyInUse
from acme_ca.domain.audit import account_actor, key_actor
from acme_ca.domain.models import (
    Account,
    AuthorizationStatus,
    ChallengeStatus,
    Order,
    OrderStatus,
)
from acme_ca.domain.origin import set_actor
from acme_ca.domain.problems import AcmeProblem, ProblemType, malformed, unauthorized
from acme_ca.encoding import rfc3339

PEM_CHAIN = "application/pem-certificate-chain"
RETRY_AFTER = "1"  # seconds: validations on a local network finish well within it


async def _verified(
    request: web.Request, auth: Literal["jwk", "kid", "either"] = "kid"
) -> tuple[VerifiedRequest, Account | None]:
    services = services_of(request)
    found: dict[str, Account] = {}

    async def key_for_kid(kid: str) -> AccountKey:
        account_id = services.links.account_id_from_kid(kid)
        if account_id is None:
            raise AcmeProblem(
                ProblemType.ACCOUNT_DOES_NOT_EXIST, "kid is not an account URL of this server"
            )
        account = await services.accounts.account_for_kid(account_id)
        found["account"] = account
        return stored_account_key(account.jwk)

    verified = await verify_jws(
        await request.read(),
        content_type=request.headers.get("Content-Type"),
        url=services.links.request_url(request.raw_path),
        auth=auth,
        key_for_kid=key_for_kid,
        consume_nonce=services.nonces.consume,
    )
    account = found.get("account")  # who acts, for the audit log and the logs (kid or jwk)
    set_actor(account_actor(account.id) if account else key_actor(verified.key.thumbprint))
    return verified, account


async def _account(request: web.Request) -> tuple[VerifiedRequest, Account]:
    verified, account = await _verified(request, "kid")
    assert account is not None
    return verified, account


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers)


def _require_post_as_get(verified: VerifiedRequest) -> None:
    if not verified.post_as_get:
        raise malformed("this resource is read with POST-as-GET: the payload must be empty")


def _services(request: web.Request) -> Services:
    return services_of(request)


# --- public, unauthenticated ----------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    not_after = _services(request).ca.intermediate_not_after()
    return _json(
        {"status": "ok", "intermediate_not_after": not_after.isoformat()},
        headers={"Cache-Control": "no-store"},
    )


async def root_certificate(request: web.Request) -> web.Response:
    """The root, for clients to trust (the guide's root-ca.crt)."""
    return web.Response(body=_services(request).ca.root_pem(), content_type=PEM_CHAIN)


async def ca_chain(request: web.Request) -> web.Response:
    """Intermediate then root (the guide's ca-chain.pem)."""
    return web.Response(body=_services(request).ca.chain_pem(), content_type=PEM_CHAIN)


async def directory(request: web.Request) -> web.Response:
    services = _services(request)
    return _json(
        views.directory_json(services.links, services.meta, services.caa_identities,
                             services.profiles),
        headers={"Cache-Control": "public, max-age=0, no-cache"},
    )


async def renewal_info(request: web.Request) -> web.Response:
    """RFC 9773 4: an unauthenticated GET of one certificate's suggested window, always
    with a Retry-After (4.3), problems included: a client waits as long after an error
    (4.3.3), and this says how long."""
    ari = _services(request).renewal_info
    try:
        answer = await ari.answer(request.match_info["cert_id"])
    except AcmeProblem as problem:
        problem.headers["Retry-After"] = str(ari.retry_after())
        raise
    window = {"start": rfc3339(answer.window.start),
              "end": rfc3339(answer.window.end)}
    return _json({"suggestedWindow": window},
                 headers={"Retry-After": str(answer.retry_after)})


async def new_nonce(request: web.Request) -> web.Response:
    """RFC 8555 7.2: HEAD 200, GET 204; the middleware adds the nonce and no-store.
    HEAD says Content-Length: 0 (RFC 9110 8.6), so that no client has to guess whether
    a body follows and close the connection to be sure."""
    if request.method == "HEAD":
        return web.Response(status=200, headers={"Content-Length": "0"})
    return web.Response(status=204)


# --- accounts -------------------------------------------------------------------------


async def new_account(request: web.Request) -> web.Response:
    services = _services(request)
    verified, _ = await _verified(request, "jwk")
    payload = verified.json()
    account, created = await services.accounts.new_account(  # the peer: no X-Forwarded-For
        verified.key, payload, lambda: external_binding(payload, outer=verified),
        address=request.remote)
    set_actor(account_actor(account.id))  # the key's account, found or just created
    return _json(
        views.account_json(account, services.links),
        status=201 if created else 200,
        headers={"Location": services.links.account(account.id)},
    )


async def account(request: web.Request) -> web.Response:
    services = _services(request)
    verified, acct = await _account(request)
    if acct.id != request.match_info["id"]:
        raise unauthorized("the kid does not match the account URL")
    if not verified.post_as_get:
        acct = await services.accounts.update(acct, verified.json())
    return _json(
        views.account_json(acct, services.links),
        headers={"Location": services.links.account(acct.id)},
    )


async def account_orders(request: web.Request) -> web.Response:
    """7.1.2.1: the account's orders, a page at a time with Link rel="next"."""
    services = _services(request)
    verified, acct = await _account(request)
    _require_post_as_get(verified)
    if acct.id != request.match_info["id"]:
        raise unauthorized("the kid does not match the account URL")
    after = request.query.get("cursor")
    ids = await services.orders.list_orders(acct, after)
    response = _json({"orders": [services.links.order(i) for i in ids]})
    if len(ids) == services.orders.page_size:
        next_url = f"{services.links.account_orders(acct.id)}?cursor={ids[-1]}"
        response.headers.add("Link", f'<{next_url}>;rel="next"')
    return response


async def key_change(request: web.Request) -> web.Response:
    services = _services(request)
    verified, acct = await _account(request)
    new_key = verify_key_change_inner(verified.json(), outer=verified)
    try:
        acct = await services.accounts.change_key(acct, new_key)
    except KeyInUse as exc:
        exc.headers["Location"] = services.links.account(exc.account_id)
        raise
    return _json(
        views.account_json(acct, services.links),
        headers={"Location": services.links.account(acct.id)},
    )


# --- orders ---------------------------------------------------------------------------


async def _order_response(services: Services, order: Order, status: int = 200
                          ) -> web.Response:
    headers = {"Location": services.links.order(order.id)}
    if order.status is OrderStatus.PROCESSING:
        headers["Retry-After"] = RETRY_AFTER
    replaces = None if order.replaces is None else (
        await services.renewal_info.cert_id(order.replaces))  # echoed (RFC 9773 5)
    return _json(views.order_json(order, services.links, replaces), status=status,
                 headers=headers)


async def new_order(request: web.Request) -> web.Response:
    services = _services(request)
    verified, acct = await _account(request)
    order = await services.orders.new_order(acct, verified.json())
    return await _order_response(services, order, status=201)


async def order(request: web.Request) -> web.Response:
    services = _services(request)
    verified, acct = await _account(request)
    _require_post_as_get(verified)
    return await _order_response(
        services, await services.orders.get_order(acct, request.match_info["id"])
    )


async def finalize(request: web.Request) -> web.Response:
    services = _services(request)
    verified, acct = await _account(request)
    finalized = await services.orders.finalize(acct, request.match_info["id"], verified.json())
    return await _order_response(services, finalized)


# --- authorizations and challenges ------------------------------------------------------


async def authorization(request: web.Request) -> web.Response:
    services = _services(request)
    verified, acct = await _account(request)
    authz_id = request.match_info["id"]
    if verified.post_as_get:
        authz = await services.authorizations.get(acct, authz_id)
    else:
        authz = await services.authorizations.deactivate(acct, authz_id, verified.json())
    headers = {"Retry-After": RETRY_AFTER} if authz.status is AuthorizationStatus.PENDING else {}
    return _json(views.authorization_json(authz, services.links), headers=headers)


async def challenge(request: web.Request) -> web.Response:
    """7.5.1: {} starts validation; an empty payload reads the challenge."""
    services = _services(request)
    verified, acct = await _account(request)
    challenge_id = request.match_info["id"]
    if verified.post_as_get:
        chall = await services.authorizations.get_challenge(acct, challenge_id)
    else:
        verified.json()  # must be a JSON object ({}; old clients send more)
        chall = await services.authorizations.respond(acct, challenge_id)
    response = _json(views.challenge_json(chall, services.links))
    response.headers.add(
        "Link", f'<{services.links.authorization(chall.authorization_id)}>;rel="up"'
    )
    if chall.status is ChallengeStatus.PROCESSING:
        response.headers["Retry-After"] = RETRY_AFTER
    return response


# --- certificates ---------------------------------------------------------------------


async def certificate(request: web.Request) -> web.Response:
    """7.4.2: the chain as application/pem-certificate-chain; other chains the CA can
    offer are linked with rel="alternate"."""
    services = _services(request)
    verified, acct = await _account(request)
    _require_post_as_get(verified)
    serial = request.match_info["serial"]
    try:
        chosen = int(request.match_info.get("n", "0"))
    except ValueError:
        raise malformed("no such alternate chain", status=404) from None
    chains = await services.orders.certificate_chains(acct, serial)
    if not 0 <= chosen < len(chains):
        raise malformed("no such alternate chain", status=404)
    response = web.Response(body=chains[chosen], content_type=PEM_CHAIN)
    for n in range(len(chains)):
        if n != chosen:
            url = services.links.certificate(serial, n)
            response.headers.add("Link", f'<{url}>;rel="alternate"')
    return response


async def revoke_cert(request: web.Request) -> web.Response:
    services = _services(request)
    verified, acct = await _verified(request, "either")
    await services.revocation.revoke(
        verified.json(), account=acct, key_thumbprint=verified.key.thumbprint
    )
    return web.Response(status=200)
