"""Fuzz: the protected header of correctly signed requests, against the real server.

RFC 8555 6.2-6.5: "alg", "nonce", "url" and one of "jwk" or "kid" are protected, so the
server reads them before it can know who signed (the kid names the key) and after (the
nonce is spent last). Here each request to each resource is valid but for a few header
members, replaced (by a valid value followed by junk: the server's account URL prefix
plus a lone surrogate, a request URL plus a query, a used nonce, 70,000 characters; by
another account's kid or key; by any JSON), removed or added ("b64", "crit", "jwk" next
to "kid"), and then signed by the request's key, so that it passes or fails the
signature on its own merits. No answer is a 500, and a request whose "alg", "kid",
"nonce" or "url" is not what the client was given, or that carries "b64", "crit" or
both "jwk" and "kid", never succeeds.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from acme_ca.api.jws import ALGORITHMS
from tests.fuzz.strategies import JSON, NEAR_TEXT, TEXT, after, fuzz, mutated_object
from tests.fuzz.world import (
    ACCOUNT_PREFIX,
    DEACTIVATED_KID,
    DELETE,
    JWK,
    JWK_X,
    JWK_Y,
    KID,
    NONCE,
    OTHER_JWK,
    OTHER_KID,
    ROUTES,
    TEMPLATES,
    URL,
    USED_NONCE,
    World,
    check,
    fill,
)
from tests.protocol.helpers import KEY_CHANGE, NEW_ORDER

CHECKED = ("alg", "kid", "nonce", "url")  # a request with any of them changed must fail
MEMBERS: dict[str, st.SearchStrategy[Any]] = {
    "kid": after(KID, ACCOUNT_PREFIX, OTHER_KID)
    | st.sampled_from([OTHER_KID, DEACTIVATED_KID, ACCOUNT_PREFIX, DELETE]) | JSON,
    "url": after(URL, ACCOUNT_PREFIX) | st.sampled_from([DELETE, NEW_ORDER, KEY_CHANGE]) | JSON,
    "nonce": after(NONCE, USED_NONCE)
    | st.sampled_from([USED_NONCE, DELETE, "", "AAAAAAAAAAAAAAAAAAAAAA"]) | NEAR_TEXT | JSON,
    "alg": st.sampled_from([*ALGORITHMS, "none", "HS256", "es256", "ES256 ", DELETE]) | JSON,
    "jwk": st.sampled_from([JWK, OTHER_JWK, DELETE])
    | mutated_object({"kty": "EC", "crv": "P-256", "x": JWK_X, "y": JWK_Y}) | JSON,
    "b64": st.booleans() | JSON,
    "crit": st.just(["b64"]) | JSON,
}


@st.composite
def header_edits(draw: st.DrawFn) -> dict[str, Any]:
    """One to three members of the protected header, each with its new value (DELETE:
    left out), sometimes with a member of any name added."""
    names = draw(st.lists(st.sampled_from(sorted(MEMBERS)), min_size=1, max_size=3,
                          unique=True))
    edits = {name: draw(MEMBERS[name]) for name in names}
    if draw(st.integers(0, 4)) == 0:
        edits[draw(TEXT | NEAR_TEXT)] = draw(JSON)
    return edits


def must_fail(given: dict[str, Any], sent: dict[str, Any]) -> bool:
    """RFC 8555 6.2-6.5: what a server must refuse, whoever signed it."""
    changed = any(sent.get(name, DELETE) != given.get(name, DELETE) for name in CHECKED)
    return changed or "b64" in sent or "crit" in sent or ("jwk" in sent) == ("kid" in sent)


@fuzz(2)
@given(route=st.sampled_from(ROUTES), edits=header_edits())
@example(route="newOrder", edits={"kid": KID + "\ud800"})  # was a 500 (UnicodeEncodeError)
@example(route="newOrder", edits={"kid": ACCOUNT_PREFIX + "é"})
@example(route="newOrder", edits={"kid": ACCOUNT_PREFIX + "none"})  # accountDoesNotExist
@example(route="newOrder", edits={"kid": ACCOUNT_PREFIX + "%41"})  # not as this CA writes it
@example(route="account", edits={"kid": KID + "A" * 70_000})  # larger than a body may be
@example(route="newOrder", edits={"kid": DEACTIVATED_KID})  # 401 (7.3.6)
@example(route="newOrder", edits={"kid": OTHER_KID})  # someone else's account: bad signature
@example(route="newOrder", edits={"nonce": USED_NONCE})  # badNonce after a valid signature
@example(route="finalize", edits={"nonce": "AAAAAAAAAAAAAAAAAAAAAA"})
@example(route="newOrder", edits={"nonce": "\udfff"})
@example(route="revokeCert", edits={"url": URL + "?x"})  # 403 (6.4)
@example(route="order", edits={"url": DELETE, "alg": DELETE})
@example(route="newOrder", edits={"alg": "ES384"})  # not the key's algorithm
@example(route="challenge", edits={"jwk": JWK})  # both jwk and kid
@example(route="keyChange", edits={"b64": False})
@example(route="newAccount", edits={"jwk": OTHER_JWK})  # a key that did not sign
@example(route="newAccount", edits={"jwk": {"kty": "EC", "crv": "P-256", "x": JWK_X + "A",
                                            "y": JWK_Y}})  # badPublicKey
@example(route="newAccount", edits={"kid": KID, "jwk": DELETE})
async def test_mutated_protected_header(world: World, route: str, edits: dict[str, Any]) -> None:
    target = await world.target(route)
    given = fill(target.header(await world.nonce()), target.tokens)
    sent = {name: value for name, value in {**given, **fill(edits, target.tokens)}.items()
            if value != DELETE}
    response = await world.send(target, sent, TEMPLATES.get(route))
    check(response)
    if must_fail(given, sent):
        assert response.status >= 400, (response.status, sent)
