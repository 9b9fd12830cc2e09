"""A finalize through ACME signs the certificate in the signing pool, not on the event
loop (issue 14: an RSA-4096 intermediate, or a PKCS#11 token, stalled every other
request while it signed). The intermediate's signer is wrapped in one that records the
thread of each signature; the test runs on the event loop's own thread. The other
signing paths (CRL, OCSP, the server's certificate): tests/authority/test_signing_off_loop.py.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from cryptography import x509

from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import issue
from tests.signers import Recording


async def test_a_finalize_signs_off_the_event_loop(server: AcmeServer) -> None:
    """RFC 8555 7.4: the certificate the finalize asked for, signed in another thread by
    a signer that is not a key file (the stand-in path a token takes), and it verifies."""
    recording = Recording(server.issuer.signer)
    server.issuers.current = replace(server.issuer, signer=recording)
    client = server.client()
    await client.new_account()
    order, pem = await issue(server, client, "web.bluerobin.local")
    assert order["status"] == "valid"
    leaf = x509.load_pem_x509_certificates(pem)[0]
    leaf.verify_directly_issued_by(server.issuer.certificate)
    assert recording.threads and threading.get_ident() not in recording.threads
