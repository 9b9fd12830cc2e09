"""Fuzz: newAccount with an External Account Binding (RFC 8555 7.3.4) through the real
server: the binding's protected header and payload valid or mutated (then MACed again,
with the key's HMAC key or a wrong one), and the flattened JWS around them valid or
mutated. Besides world.check: an account is created only for a binding that is valid
in every part (members of the header beyond those 7.3.4 names are extensions, and
ignored), and then it is bound to the key; otherwise the key stays unbound.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from acme_ca.authority.eab import new_key
from tests.acme_client import b64
from tests.fuzz.strategies import JSON, dumps, fuzz, mutated_object
from tests.fuzz.world import JWK, TEMPLATES, URL, World, check, fill

EAB_KID = "⟨eab-kid⟩"
PROTECTED, PAYLOAD, MAC = "⟨eab.protected⟩", "⟨eab.payload⟩", "⟨eab.mac⟩"
HEADER = {"alg": "HS256", "kid": EAB_KID, "url": URL}
BINDING = {"protected": PROTECTED, "payload": PAYLOAD, "signature": MAC}


@fuzz(0.5)
@given(header=st.just(HEADER) | mutated_object(HEADER), payload=st.just(JWK) | JSON,
       right_key=st.booleans(), binding=st.just(BINDING) | mutated_object(BINDING))
@example(header=HEADER, payload=JWK, right_key=True, binding=BINDING)  # 201, bound
@example(header=HEADER, payload=JWK, right_key=False, binding=BINDING)  # unauthorized
@example(header={**HEADER, "nonce": "AAAA"}, payload=JWK, right_key=True, binding=BINDING)
@example(header=HEADER, payload={}, right_key=True, binding=BINDING)  # malformed
async def test_new_account_with_a_binding(world: World, header: Any, payload: Any,
                                          right_key: bool, binding: Any) -> None:
    store = world.server.store
    key = await store.create_eab_key(new_key("fuzz", world.server.clock.now()))
    target = await world.target("newAccount")
    tokens = {**target.tokens, EAB_KID: key.kid}
    protected = b64(dumps(fill(header, tokens)))
    body = b64(dumps(fill(payload, tokens)))
    mac = hmac.new(key.hmac_key if right_key else b"another key",
                   f"{protected}.{body}".encode(), hashlib.sha256).digest()
    eab = fill(binding, {PROTECTED: protected, PAYLOAD: body, MAC: b64(mac)})
    request = {**TEMPLATES["newAccount"], "externalAccountBinding": eab}
    response = await world.send(target, target.header(await world.nonce()), request)
    check(response)
    bound = (await store.get_eab_key(key.kid)).account_id
    if response.status < 300:
        assert response.status == 201 and right_key, response.status
        assert (payload, binding) == (JWK, BINDING)
        assert {name: header.get(name) for name in HEADER} == HEADER  # other members: JWS
        assert not {"nonce", "jwk", "b64", "crit"} & set(header)      # extensions, ignored
        assert bound is not None and response.headers["Location"].endswith("/" + bound)
    else:
        assert bound is None
