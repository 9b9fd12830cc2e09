"""Fuzz: through the whole aiohttp application, no request body yields a 500.

Two kinds of request, to every POST resource of a server (tests/fuzz/world.py), each
example with its own fresh target where a request may use it up:

- bodies that are not valid requests: arbitrary bytes, arbitrary JSON, and valid
  requests with a few bytes mutated, under several content types;
- valid requests, correctly signed, whose payload is any JSON or a valid payload with
  members replaced, removed or added (so every payload schema is reached: account
  update, newOrder, finalize with mutated CSRs, authorization deactivation, challenge,
  and the POST-as-GET resources), on fresh targets and on targets already used up.

newAccount and keyChange are fuzzed in test_fuzz_http_accounts.py, revokeCert in
test_fuzz_http_revocation.py, the protected header in test_fuzz_http_header.py.
Every answer is below 500; every error is a problem document with a nonce and the
index link (world.check).
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.acme_client import Response, b64, sign
from tests.fuzz.strategies import EDITS, JSON, dumps, fuzz, mutated_bytes, mutated_object
from tests.fuzz.world import CSR, ROUTES, TEMPLATES, Der, World, check

PAYLOAD_ROUTES = ("account", "newOrder", "order", "finalize", "authorization",
                  "challenge", "certificate", "orders")


@fuzz(0.5)
@given(route=st.sampled_from(ROUTES), data=st.data(),
       content_type=st.sampled_from(["application/jose+json", "application/jose+json; x=é",
                                     "application/json", None]))
async def test_bodies_that_are_not_requests(world: World, route: str, data: st.DataObject,
                                            content_type: str | None) -> None:
    target = await world.target(route)
    valid = sign(target.key, target.header(await world.nonce()), b"{}")
    body = data.draw(st.binary(max_size=300) | st.builds(dumps, JSON)
                     | mutated_bytes(dumps(valid)) | mutated_object(valid).map(dumps))
    headers = {"Content-Type": content_type} if content_type else {}
    response = await world.server.http.post(world.holder.path(target.url), data=body,
                                            headers=headers)
    check(Response(response.status, response.headers, await response.read()))


def payloads(route: str) -> st.SearchStrategy[Any]:
    """A payload for `route`: any JSON, or its template with members mutated; finalize's
    "csr" sometimes keeps its name but carries mutated DER."""
    template = TEMPLATES.get(route)
    hostile = st.none() | JSON
    if template is None:
        return hostile
    if route == "finalize":
        hostile |= st.builds(lambda edits: {"csr": Der(CSR, edits)}, st.just(()) | EDITS)
    return st.just(template) | mutated_object(template) | hostile


def calls(route: str) -> st.SearchStrategy[tuple[str, Any]]:
    return st.tuples(st.just(route), payloads(route))


@fuzz(2)
@given(call=st.sampled_from(PAYLOAD_ROUTES).flatmap(calls), used=st.booleans())
@example(call=("finalize", {"csr": CSR}), used=False)
@example(call=("finalize", {"csr": Der(CSR, (("flip", -1, 0),))}), used=False)
@example(call=("finalize", {"csr": CSR}), used=True)
@example(call=("authorization", {"status": "deactivated"}), used=False)
@example(call=("authorization", {"status": "deactivated"}), used=True)
@example(call=("challenge", {}), used=False)
@example(call=("challenge", {}), used=True)
@example(call=("account", {"status": "deactivated"}), used=False)
@example(call=("account", None), used=True)
async def test_signed_requests_with_hostile_payloads(world: World, call: tuple[str, Any],
                                                      used: bool) -> None:
    """Correctly signed, to a fresh target (or, with ``used``, one already finalized,
    deactivated or invalid), with the payload as drawn."""
    route, payload = call
    target = await world.target(route, used=used)
    check(await world.send(target, target.header(await world.nonce()), payload))


async def test_refinalize_with_a_csr_of_an_unknown_key_type(world: World) -> None:
    """Found by the fuzz above: finalize again on a valid order, with a CSR whose key
    algorithm cryptography does not know (id-ecPublicKey's OID, 1.2.840.10045.2.1, made
    1.2.840.10173.2.1),
    raised UnsupportedAlgorithm, a 500; it is orderNotReady (RFC 8555 7.4) like any
    finalize of an order that is not ready, other than the same CSR again."""
    holder = world.holder
    target = await world.target("finalize")
    assert (await holder.post(target.url, {"csr": b64(world.csr)})).status == 200
    unknown = world.csr.replace(b"\x2a\x86\x48\xce\x3d\x02\x01", b"\x2a\x86\x48\xcf\x3d\x02\x01")
    assert unknown != world.csr
    response = await holder.post(target.url, {"csr": b64(unknown)})
    check(response)
    assert (response.status, response.problem_type) == (403, "orderNotReady")
    again = await holder.post(target.url, {"csr": b64(world.csr)})
    assert again.status == 200 and again.json()["status"] == "valid"
