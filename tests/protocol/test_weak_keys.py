"""Weak keys on the wire: account keys at newAccount and keyChange are refused with
badPublicKey, CSR keys at finalize with badCSR (RFC 8555 6.7), and the detail says why
(Fermat-factorable modulus, small prime factor, blocklisted key)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    KEY_CHANGE,
    NEW_ACCOUNT,
    assert_problem,
    finalize,
    key_change_jws,
    ready_order,
    registered,
)
from tests.weak_keys import E, close_primes_key, small_factor_key, spki_sha256_hex

EXPONENT_3 = rsa.generate_private_key(3, 2048)  # BRs 6.1.6: e = 65537 (CSRs already)
BLOCKED = {"blocked ec": ec.generate_private_key(ec.SECP256R1()),
           "blocked rsa": rsa.generate_private_key(E, 2048)}
WEAK: dict[str, tuple[Callable[[], Any], str]] = {
    "close primes": (close_primes_key, "Fermat's method"),
    "small factor": (small_factor_key, "divisible by the small prime 3"),
    "blocked ec": (lambda: BLOCKED["blocked ec"], "blocklist of known-compromised keys"),
    "blocked rsa": (lambda: BLOCKED["blocked rsa"], "blocklist of known-compromised keys"),
    "exponent 3": (lambda: EXPONENT_3, "public exponent must be 65537"),
}


@pytest.fixture
async def server(server_factory: Callable[..., Any], tmp_path: Path
                 ) -> AsyncIterator[AcmeServer]:
    """A server whose [policy] blocked_keys_file lists the two BLOCKED keys."""
    blocklist = tmp_path / "blocked-keys.txt"
    blocklist.write_text("".join(f"{spki_sha256_hex(k)}\n" for k in BLOCKED.values()))
    acme = await server_factory(**{"policy.blocked_keys_file": str(blocklist)})
    yield acme
    await acme.store.close()


@pytest.mark.parametrize("weak", WEAK)
async def test_new_account_with_a_weak_key_is_bad_public_key(server: AcmeServer,
                                                             weak: str) -> None:
    """RFC 8555 7.3 and 6.7: newAccount with an unacceptable key is badPublicKey; no
    account is made for it."""
    make, fragment = WEAK[weak]
    client = server.client(key=make())
    doc = assert_problem(await client.new_account(), 400, "badPublicKey")
    assert fragment in doc["detail"], doc
    lookup = await client.post(NEW_ACCOUNT, {"onlyReturnExisting": True}, use_jwk=True)
    assert_problem(lookup, 400, "badPublicKey")


@pytest.mark.parametrize("weak", ["close primes", "blocked ec", "exponent 3"])
async def test_key_change_to_a_weak_key_is_bad_public_key(server: AcmeServer,
                                                          weak: str) -> None:
    """RFC 8555 7.3.5 and 6.7: the new key of a keyChange passes the same key checks as a
    new account's; the account keeps its key."""
    make, fragment = WEAK[weak]
    client = await registered(server)
    response = await client.post(KEY_CHANGE, key_change_jws(client, make()))
    doc = assert_problem(response, 400, "badPublicKey")
    assert fragment in doc["detail"], doc
    assert (await client.post(client.kid)).status == 200


@pytest.mark.parametrize("weak", WEAK)
async def test_finalize_with_a_weak_csr_key_is_bad_csr(server: AcmeServer, weak: str) -> None:
    """RFC 8555 7.4 and 6.7: a CSR whose key is unacceptable is badCSR, and the order
    stays ready for a CSR with a good key."""
    make, fragment = WEAK[weak]
    client = await registered(server)
    order, order_url = await ready_order(server, client, "web.bluerobin.local")
    response, _ = await finalize(client, order, "web.bluerobin.local", csr_key=make())
    doc = assert_problem(response, 400, "badCSR")
    assert fragment in doc["detail"], doc
    assert (await client.post(order_url)).json()["status"] == "ready"
    response, _ = await finalize(client, order, "web.bluerobin.local")
    assert response.status == 200, response.body
