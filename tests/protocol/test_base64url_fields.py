"""Strict base64url in protocol fields (RFC 8555 6.1, 7.4, 7.6; RFC 7515 2): a csr or
a certificate has one spelling, and any other is malformed."""

from __future__ import annotations

import string

from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.domain.models import CertificateStatus
from tests.acme_client import b64, make_csr
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import (
    REVOKE,
    assert_problem,
    finalize,
    leaf_of,
    ready_order,
    registered,
)

NAME = "web.bluerobin.local"
B64URL = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def non_canonical(text: str) -> str:
    """The same bytes spelled differently: the last character's unused bits set
    (RFC 4648 3.5 says an encoder leaves them zero; RFC 7515 2 has no padding)."""
    assert len(text) % 4 in (2, 3), "this length has no unused bits"
    return text[:-1] + B64URL[B64URL.index(text[-1]) | 1]


async def test_non_canonical_csr_is_malformed(server: AcmeServer) -> None:
    """RFC 8555 7.4 ("csr": base64url) and RFC 7515 2 / Appendix C: one encoding per
    byte string, so a csr whose last character has its unused bits set is malformed."""
    client = await registered(server)
    order, url = await ready_order(server, client, NAME)
    for _ in range(50):  # a DER length that leaves unused bits (not a multiple of 3)
        text = b64(make_csr([NAME])[0])
        if len(text) % 4:
            break
    response = await client.post(order["finalize"], {"csr": non_canonical(text)})
    assert_problem(response, 400, "malformed")
    assert (await client.post(url)).json()["status"] == "ready"


async def test_non_canonical_certificate_is_not_revoked(server: AcmeServer) -> None:
    """RFC 8555 7.6 ("certificate": base64url DER) and RFC 7515 2: a non-canonical
    spelling is malformed and revokes nothing."""
    client = await registered(server)
    for _ in range(12):  # a DER length that leaves unused bits (not a multiple of 3)
        order, _ = await ready_order(server, client, NAME)
        response, _ = await finalize(client, order, NAME)
        pem = (await client.post(response.json()["certificate"])).body
        text = b64(leaf_of(pem).public_bytes(Encoding.DER))
        if len(text) % 4:
            break
    response = await client.post(REVOKE, {"certificate": non_canonical(text)})
    assert_problem(response, 400, "malformed")
    statuses = {r.status for r in await server.store.list_certificates()}
    assert CertificateStatus.REVOKED not in statuses
