"""Alternate chains (RFC 8555 7.4.2): the intermediate cross-signed by a second root is
offered with Link rel="alternate", and each variant links back to the others."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from acme_ca.pki import files
from acme_ca.pki.keys import KeyType, generate_key, load_key
from acme_ca.pki.profiles import build_intermediate, build_root, ca_name
from tests.acme_client import b64, make_csr
from tests.protocol.helpers import authorize


def cross_signed_chain(hierarchy: Any, tmp_path: Path) -> tuple[Path, x509.Certificate]:
    """A second root, and the intermediate's name and key certified by it."""
    other_key = generate_key(KeyType.EC_P384)
    other_root = build_root(other_key, ca_name("Other Root", None, None),
                            hierarchy.now - timedelta(hours=1))
    key = load_key(hierarchy.paths.intermediate_key, None)
    cross = build_intermediate(root_cert=other_root, root_key=other_key,
                               public_key=key.public_key(),
                               subject=hierarchy.intermediate.subject, not_before=hierarchy.now)
    path = tmp_path / "cross-chain.pem"
    path.write_bytes(files.pem(cross, other_root))
    return path, cross


async def test_alternate_chain_is_linked_and_served(
        server_factory: Callable[..., Any], make_hierarchy: Callable[..., Any],
        tmp_path: Path) -> None:
    hierarchy = make_hierarchy("pki")
    path, cross = cross_signed_chain(hierarchy, tmp_path)
    server = await server_factory(hierarchy, **{"ca.alternate_chains": [str(path)]})
    client = server.client()
    await client.new_account()
    created = await client.new_order("web.bluerobin.local")
    await authorize(server, client, created.json())
    csr, _ = make_csr(["web.bluerobin.local"])
    order = (await client.post(created.json()["finalize"], {"csr": b64(csr)})).json()
    default = await client.post(order["certificate"])
    links = default.headers.getall("Link")
    alternate = [link.split(">")[0][1:] for link in links if 'rel="alternate"' in link]
    assert alternate == [order["certificate"] + "/1"]
    other = await client.post(alternate[0])
    assert other.status == 200
    default_certs = x509.load_pem_x509_certificates(default.body)
    other_certs = x509.load_pem_x509_certificates(other.body)
    assert default_certs[0] == other_certs[0]
    assert default_certs[1] == hierarchy.intermediate and other_certs[1] == cross
    back = [link for link in other.headers.getall("Link") if 'rel="alternate"' in link]
    assert back == [f'<{order["certificate"]}>;rel="alternate"']
    missing = await client.post(order["certificate"] + "/2")
    assert missing.status == 404
    await server.store.close()
