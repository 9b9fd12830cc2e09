"""CRLs as relying parties see them (RFC 5280 5), against a live `acme-ca serve`:
fetched over plain HTTP from the URL in a leaf's CRL distribution points, checked by
openssl (`openssl crl -verify`, `openssl verify -crl_check`), with leaves issued by
lego (/usr/bin/lego). A revocation shows within seconds; after `intermediate renew`
and a reload the old intermediate keeps signing the CRL of what it issued; the CRL
number grows across a restart.
"""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID

from integration.clients import (
    AcmeServer,
    load_certs,
    renew_intermediate,
    revoke_with_certificate_key,
    serving_acme,
)
from integration.conftest import (
    assert_user_error,
    free_port,
    require_program,
    run_cli,
    serving_config,
    until,
)
from integration.test_lego import Lego

pytestmark = pytest.mark.integration

REVOCATION_SHOWS = 10.0  # seconds: the publisher runs every 2 s under the lease


class Fetched(NamedTuple):
    status: int
    content_type: str
    body: bytes


def fetch(url: str) -> Fetched:
    """One plain-HTTP GET, as a relying party makes it."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (http://127.0.0.1)
            return Fetched(response.status, response.headers["Content-Type"], response.read())
    except urllib.error.HTTPError as error:
        return Fetched(error.code, error.headers["Content-Type"], error.read())


def crl_url(leaf: x509.Certificate) -> str:
    (point,) = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    (name,) = point.full_name or ()
    return str(name.value)


def ca_issuers_url(leaf: x509.Certificate) -> str:
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    (url,) = [d.access_location.value for d in aia
              if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]
    return str(url)


def served_crl(url: str) -> x509.CertificateRevocationList:
    got = fetch(url)
    assert (got.status, got.content_type) == (200, "application/pkix-crl"), got
    return x509.load_der_x509_crl(got.body)


def number_of(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def wait_for_crl(url: str) -> x509.CertificateRevocationList:
    """The CRL at `url` once it is there (the first is published at start)."""
    until(lambda: fetch(url).status == 200, f"{url} answers a CRL", REVOCATION_SHOWS)
    return served_crl(url)


def wait_until_listed(url: str, serial: int) -> x509.CertificateRevocationList:
    """The CRL at `url` once it lists `serial`, within REVOCATION_SHOWS seconds."""
    found: dict[str, x509.CertificateRevocationList] = {}

    def listed() -> bool:
        found["crl"] = served_crl(url)
        return found["crl"].get_revoked_certificate_by_serial_number(serial) is not None

    until(listed, f"the CRL at {url} lists {serial:x}", REVOCATION_SHOWS)
    return found["crl"]


def pem_file(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs))
    return path


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_program("openssl"), *map(str, args)], capture_output=True,
                          text=True, timeout=60, check=False)


def crl_pem(crl: x509.CertificateRevocationList, path: Path) -> Path:
    path.write_bytes(crl.public_bytes(Encoding.PEM))
    return path


def assert_crl_verifies(der: bytes, chain: Path, work: Path) -> None:
    """`openssl crl -inform DER -CAfile chain -verify` parses the CRL and checks its
    signature against the intermediate in `chain`."""
    path = work / "served.crl"
    path.write_bytes(der)
    result = openssl("crl", "-inform", "DER", "-in", path, "-CAfile", chain, "-verify",
                     "-noout")
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "verify OK" in result.stdout + result.stderr, (result.stdout, result.stderr)


def verify_with_crl(root: Path, intermediate: Path, crl: Path, leaf: Path,
                    ) -> subprocess.CompletedProcess[str]:
    return openssl("verify", "-crl_check", "-CAfile", root, "-untrusted", intermediate,
                   "-CRLfile", crl, leaf)


def check_against(acme: AcmeServer, intermediate: x509.Certificate,
                  crl: x509.CertificateRevocationList, leaf: x509.Certificate, work: Path,
                  ) -> subprocess.CompletedProcess[str]:
    """`crl` verifies against `intermediate` (`openssl crl -verify`); what
    `openssl verify -crl_check` says of `leaf` with it."""
    work.mkdir()
    root = load_certs(acme.root_cert)
    assert_crl_verifies(crl.public_bytes(Encoding.DER),
                        pem_file(work / "chain.pem", intermediate, *root), work)
    return verify_with_crl(acme.root_cert, pem_file(work / "intermediate.pem", intermediate),
                           crl_pem(crl, work / "crl.pem"), pem_file(work / "leaf.pem", leaf))


def test_a_lego_leaf_names_a_crl_that_openssl_verifies_and_a_revocation_shows(
    acme_server: AcmeServer, tmp_path: Path
) -> None:
    """RFC 5280 4.2.1.13: the leaf lego gets carries an http CRL distribution point that
    answers a DER CRL; `openssl crl -verify` checks it against the intermediate;
    `openssl verify -crl_check` accepts the leaf, then, a revocation later and within
    seconds, rejects it as revoked (RFC 5280 6.3)."""
    lego = Lego(acme_server, tmp_path / "lego")
    result, _ = lego("run")
    assert result.returncode == 0, result.stderr + acme_server.logs()
    leaf, intermediate = load_certs(lego.certificate(".crt"))[:2]
    url = crl_url(leaf)
    assert url.startswith("http://127.0.0.1:") and url.endswith(".crl"), url
    assert f"CRL:              {crl_url(leaf)}" in acme_server.server.log()

    first = wait_for_crl(url)
    assert first.issuer == intermediate.subject
    chain = pem_file(tmp_path / "chain.pem", intermediate, *load_certs(acme_server.root_cert))
    assert_crl_verifies(first.public_bytes(Encoding.DER), chain, tmp_path)
    issuer = fetch(ca_issuers_url(leaf))  # RFC 5280 4.2.2.1 caIssuers
    assert (issuer.status, issuer.content_type) == (200, "application/pkix-cert")
    assert x509.load_der_x509_certificate(issuer.body) == intermediate

    leaf_pem = pem_file(tmp_path / "leaf.pem", leaf)
    untrusted = pem_file(tmp_path / "intermediate.pem", intermediate)
    accepted = verify_with_crl(acme_server.root_cert, untrusted,
                               crl_pem(first, tmp_path / "first.crl.pem"), leaf_pem)
    assert accepted.returncode == 0, (accepted.stdout, accepted.stderr)

    result, _ = lego("revoke", "--reason", "1", http=False)
    assert result.returncode == 0, result.stderr + acme_server.logs()
    after = wait_until_listed(url, leaf.serial_number)
    assert number_of(after) > number_of(first)
    entry = after.get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise)
    assert_crl_verifies(after.public_bytes(Encoding.DER), chain, tmp_path)
    refused = verify_with_crl(acme_server.root_cert, untrusted,
                              crl_pem(after, tmp_path / "after.crl.pem"), leaf_pem)
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr, refused

    unknown = fetch(url.rsplit("/", 1)[0] + "/0123456789abcdef.crl")
    assert unknown.status == 404 and unknown.body.count(b"\n") == 1


def test_after_renewal_the_old_intermediate_signs_the_crl_of_what_it_issued(
    acme_server: AcmeServer, tmp_path: Path
) -> None:
    """RFC 5280 5.1.2.3: each intermediate is the issuer of its own CRL. After
    `acme-ca intermediate renew` and SIGHUP, a certificate the old one signed, revoked
    after the renewal, is on the old one's CRL, which verifies against the old
    intermediate; the new one has its own CRL at its own URL."""
    before = Lego(acme_server, tmp_path / "before")
    result, _ = before("run")
    assert result.returncode == 0, result.stderr + acme_server.logs()
    old_leaf, old_intermediate = load_certs(before.certificate(".crt"))[:2]
    old_url = crl_url(old_leaf)
    wait_for_crl(old_url)

    renew_intermediate(acme_server)

    after = Lego(acme_server, tmp_path / "after")
    result, _ = after("run")
    assert result.returncode == 0, result.stderr + acme_server.logs()
    new_leaf, new_intermediate = load_certs(after.certificate(".crt"))[:2]
    assert new_intermediate != old_intermediate
    new_url = crl_url(new_leaf)
    assert new_url != old_url

    assert revoke_with_certificate_key(
        acme_server, before.certificate(".crt"), before.certificate(".key")) is None
    old_crl = wait_until_listed(old_url, old_leaf.serial_number)
    assert old_crl.issuer == old_intermediate.subject
    refused = check_against(acme_server, old_intermediate, old_crl, old_leaf, tmp_path / "old")
    assert "certificate revoked" in refused.stdout + refused.stderr, refused

    new_crl = wait_for_crl(new_url)
    assert new_crl.issuer == new_intermediate.subject
    assert new_crl.get_revoked_certificate_by_serial_number(old_leaf.serial_number) is None
    accepted = check_against(acme_server, new_intermediate, new_crl, new_leaf, tmp_path / "new")
    assert accepted.returncode == 0, (accepted.stdout, accepted.stderr)


def test_the_crl_number_grows_across_a_restart(tmp_path: Path) -> None:
    """RFC 5280 5.2.3: "monotonically increasing"; the number lives in the store, so a
    CRL published after a restart has a greater number than any before it."""
    workdir = tmp_path / "acme-ca"
    lego_home = tmp_path / "lego"
    with serving_acme(workdir) as acme:
        lego = Lego(acme, lego_home)
        result, _ = lego("run")
        assert result.returncode == 0, result.stderr + acme.logs()
        leaf = load_certs(lego.certificate(".crt"))[0]
        url = crl_url(leaf)
        before = number_of(wait_for_crl(url))
        port, data_dir = acme.server.port, acme.server.data_dir
    with serving_config(workdir / "acme-ca.toml", data_dir, port) as server:
        restarted = AcmeServer(server, acme.http01_port)
        lego = Lego(restarted, lego_home)
        result, _ = lego("revoke", http=False)
        assert result.returncode == 0, result.stderr + restarted.logs()
        after = wait_until_listed(url, leaf.serial_number)
    assert number_of(after) > before


def test_a_taken_crl_port_is_a_one_line_error(tmp_path: Path) -> None:
    """[revocation] http_listen on a port another program holds: one line naming the
    setting and the port, exit 1, no traceback."""
    with socket.create_server(("127.0.0.1", 0)) as held:
        taken = held.getsockname()[1]
        argv = ["--data-dir", str(tmp_path / "data"), "serve", "--listen",
                f"127.0.0.1:{free_port()}", "--http-listen", f"127.0.0.1:{taken}"]
        result = run_cli(*argv, cwd=tmp_path, check=False, timeout=60)
    assert_user_error(result, "cannot listen", str(taken), "[revocation] http_listen")
