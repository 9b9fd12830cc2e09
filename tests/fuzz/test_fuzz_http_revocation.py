"""Fuzz: revokeCert (RFC 8555 7.6) by everyone who may, and may not, revoke.

Each example revokes a fresh certificate (or one already revoked, or one this CA did not
issue: its own intermediate), signed by the account that owns it, by a second account
that holds valid authorizations for its name, by an account that holds none, by a
deactivated account, with the certificate's own key, or with a key of nobody's; the
payload valid, with another reason, mutated, with mutated DER, or any JSON.
Besides world.check: a certificate is revoked (200) exactly when the request is valid,
the certificate live, and the signer the owner, an authorized account or its key.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import example, given
from hypothesis import strategies as st

from acme_ca.authority.revocation import ALLOWED_REASONS
from tests.acme_client import b64
from tests.fuzz.strategies import EDITS, JSON, fuzz, mutated_object
from tests.fuzz.world import CERTIFICATE, TEMPLATES, Der, Issued, Target, World, check, fill
from tests.protocol.helpers import REVOKE

MAY_REVOKE = ("owner", "authorized", "certificate key")
SIGNERS = (*MAY_REVOKE, "unauthorized", "deactivated", "other key")
TEMPLATE = TEMPLATES["revokeCert"]
PAYLOADS = (
    st.just(TEMPLATE)
    | st.fixed_dictionaries({"certificate": st.just(CERTIFICATE)},
                            optional={"reason": st.integers(-1, 11) | JSON})
    | st.fixed_dictionaries({"certificate": st.builds(Der, st.just(CERTIFICATE), EDITS)},
                            optional={"reason": st.integers(-1, 11)})
    | mutated_object(TEMPLATE)
    | JSON
)


def valid(payload: Any, der: bytes) -> bool:
    """``payload`` (filled) is JSON text (the strategies also draw infinities and lone
    surrogates, which Python writes out and the server refuses) and names the
    certificate ``der``, with a reason a subscriber may give (or none)."""
    try:
        json.dumps(payload, allow_nan=False, ensure_ascii=False).encode()
    except ValueError:  # UnicodeEncodeError is one
        return False
    if not isinstance(payload, dict) or payload.get("certificate") != b64(der):
        return False
    reason = payload.get("reason", 0)
    return type(reason) is int and reason in ALLOWED_REASONS


@fuzz(1)
@given(signer=st.sampled_from(SIGNERS),
       certificate=st.sampled_from(["fresh", "revoked", "not ours"]), payload=PAYLOADS)
@example(signer="owner", certificate="fresh", payload=TEMPLATE)
@example(signer="authorized", certificate="fresh", payload={"certificate": CERTIFICATE})
@example(signer="certificate key", certificate="fresh", payload={**TEMPLATE, "reason": 1})
@example(signer="unauthorized", certificate="fresh", payload=TEMPLATE)  # 403
@example(signer="other key", certificate="fresh", payload=TEMPLATE)  # 403
@example(signer="deactivated", certificate="fresh", payload=TEMPLATE)  # 401 (7.3.6)
@example(signer="owner", certificate="revoked", payload=TEMPLATE)  # alreadyRevoked
@example(signer="certificate key", certificate="not ours", payload=TEMPLATE)  # 404
@example(signer="owner", certificate="fresh",  # the same serial, other bytes: 404
         payload={"certificate": Der(CERTIFICATE, (("flip", -1, 0),))})
@example(signer="owner", certificate="fresh",  # version 6: x509.InvalidVersion
         payload={"certificate": Der(CERTIFICATE, (("set", 12, 5),))})
@example(signer="owner", certificate="fresh", payload={**TEMPLATE, "reason": 6})
@example(signer="owner", certificate="fresh", payload={**TEMPLATE, "reason": True})
async def test_revocation(world: World, signer: str, certificate: str, payload: Any) -> None:
    issued = await issued_certificate(world, certificate)
    client = {"owner": world.holder, "authorized": world.second,
              "deactivated": world.deactivated}.get(signer)
    if signer == "unauthorized":
        client = await world.keeper()
    if client is not None:
        key, kid = client.key, client.kid
    elif signer == "certificate key" and issued.key is not None:
        key, kid = issued.key, None
    else:
        key, kid = ec.generate_private_key(ec.SECP256R1()), None
    target = Target(REVOKE, key, kid, {**world.tokens(key, kid, REVOKE), CERTIFICATE: issued.der})
    response = await world.send(target, target.header(await world.nonce()), payload)
    check(response)
    revokes = (signer in MAY_REVOKE and certificate == "fresh"
               and valid(fill(payload, target.tokens), issued.der))
    assert (response.status == 200) == revokes, (response.status, response.body)


async def issued_certificate(world: World, which: str) -> Issued:
    if which == "fresh":
        return await world.certificate()
    if which == "revoked":
        return world.revoked
    intermediate = world.server.issuer.certificate  # a certificate, but not one of ours
    return Issued(intermediate.public_bytes(Encoding.DER), None)
