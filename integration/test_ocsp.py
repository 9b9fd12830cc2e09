"""OCSP (RFC 6960) end to end: a real `acme-ca serve` with ``[revocation] ocsp = true``,
a certificate issued to lego, and `openssl ocsp` asking the responder its leaf names
(AIA id-ad-ocsp): good, then revoked once lego revokes it; over POST (what openssl
sends, with a nonce) and over GET (RFC 6960 A.1: the base64 of the request in the
path, its '/' and '+' escaped), each response verified by openssl against the CA.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from integration.clients import (
    AcmeServer,
    expect_ok,
    load_certs,
    renew_intermediate,
    serving_acme,
)
from integration.conftest import require_program, run_cli
from integration.test_lego import Lego

pytestmark = pytest.mark.integration


def ocsp_url(leaf: x509.Certificate) -> str:
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    (url,) = [d.access_location.value for d in aia
              if d.access_method == AuthorityInformationAccessOID.OCSP]
    return str(url)


class Ocsp:
    """`openssl ocsp` about one leaf, verified against the CA chain (root and
    intermediate): the responder certificate must chain to it."""

    def __init__(self, acme: AcmeServer, lego: Lego, work: Path) -> None:
        self.openssl = require_program("openssl")
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.leaf = work / "leaf.pem"
        self.leaf.write_bytes(lego.certificate(".crt").read_bytes())
        self.issuer = work / "issuer.pem"  # copies: lego archives its files on revoke
        self.issuer.write_bytes(lego.certificate(".issuer.crt").read_bytes())
        self.chain = acme.server.data_dir / "ca" / "ca-chain.pem"
        self.url = ocsp_url(load_certs(self.leaf)[0])

    def _run(self, *args: str, subject: tuple[str, ...] = ()) -> str:
        """``subject``: what is asked about (``-serial N``), the leaf by default."""
        result = subprocess.run(
            [self.openssl, "ocsp", "-issuer", str(self.issuer),
             *(subject or ("-cert", str(self.leaf))), "-CAfile", str(self.chain), *args],
            capture_output=True, text=True, timeout=60, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "Response verify OK" in output, output
        return output

    def post(self) -> str:
        """openssl's own request: POST, with a nonce it checks in the response."""
        return self._run("-url", self.url)

    def get(self) -> str:
        """The request openssl writes, sent as GET <url>/<url-encoded base64>; the
        response read back and verified by openssl."""
        request, response = self.work / "request.der", self.work / "response.der"
        self._run("-no_nonce", "-reqout", str(request), "-url", self.url)
        encoded = quote(base64.b64encode(request.read_bytes()).decode(), safe="")
        with urllib.request.urlopen(f"{self.url}/{encoded}", timeout=30) as answer:  # noqa: S310
            assert answer.headers["Content-Type"] == "application/ocsp-response"
            assert "max-age=" in answer.headers["Cache-Control"]
            response.write_bytes(answer.read())
        return self._run("-no_nonce", "-reqin", str(request), "-respin", str(response))

    def post_serial(self, serial: str) -> str:
        """POST about a serial number (``0x...``) of this issuer, no certificate needed."""
        return self._run("-url", self.url, subject=("-serial", serial))


def test_openssl_ocsp_says_good_then_revoked(tmp_path: Path) -> None:
    with serving_acme(tmp_path / "acme-ca", ocsp=True) as acme:
        lego = Lego(acme, tmp_path / "lego")
        expect_ok(lego("run")[0], acme)
        ocsp = Ocsp(acme, lego, tmp_path / "ocsp")
        assert ocsp.url.endswith("/ocsp")

        for output in (ocsp.post(), ocsp.get()):
            assert f"{ocsp.leaf}: good" in output, output

        result, _ = lego("revoke", "--reason", "1", http=False)
        expect_ok(result, acme)
        for output in (ocsp.post(), ocsp.get()):
            assert f"{ocsp.leaf}: revoked" in output, output
            assert "Reason: keyCompromise" in output, output


def test_the_operators_revocation_reaches_openssl_ocsp(tmp_path: Path) -> None:
    """RFC 6960 2.2: good for a certificate issued through ACME; revoked, with the
    revocation reason, once the operator runs `acme-ca certs revoke SERIAL --reason
    keyCompromise` (a separate process on the server's database), over POST and GET;
    unknown for a serial number this issuer never signed."""
    with serving_acme(tmp_path / "acme-ca", ocsp=True) as acme:
        lego = Lego(acme, tmp_path / "lego")
        expect_ok(lego("run")[0], acme)
        ocsp = Ocsp(acme, lego, tmp_path / "ocsp")
        for output in (ocsp.post(), ocsp.get()):
            assert f"{ocsp.leaf}: good" in output, output

        serial = load_certs(ocsp.leaf)[0].serial_number
        config = acme.server.data_dir.parent / "acme-ca.toml"
        result = run_cli("--config", config, "certs", "revoke", format(serial, "X"),
                         "--reason", "keyCompromise", cwd=config.parent)
        assert "Revoked the certificate" in result.stdout, result.stdout + result.stderr
        for output in (ocsp.post(), ocsp.get()):
            assert f"{ocsp.leaf}: revoked" in output, output
            assert "Reason: keyCompromise" in output, output

        never = "0x" + secrets.token_hex(16)
        output = ocsp.post_serial(never)
        assert f"{never}: unknown" in output, output


def test_after_intermediate_renew_and_sighup_the_new_leaves_are_answered_at_once(
        tmp_path: Path) -> None:
    """RFC 6960 2.3 tryLater is for a passing trouble, not for the minute after every
    rotation: after `acme-ca intermediate renew` and SIGHUP, a leaf of the new
    intermediate is answered good by the first `openssl ocsp`, and one of the old
    intermediate still is too."""
    with serving_acme(tmp_path / "acme-ca", ocsp=True) as acme:
        before = Lego(acme, tmp_path / "before")
        expect_ok(before("run")[0], acme)
        old = Ocsp(acme, before, tmp_path / "old")
        renew_intermediate(acme)
        after = Lego(acme, tmp_path / "after")
        expect_ok(after("run")[0], acme)
        new = Ocsp(acme, after, tmp_path / "new")
        assert new.issuer.read_bytes() != old.issuer.read_bytes()
        assert f"{new.leaf}: good" in new.post()
        assert f"{old.leaf}: good" in old.post()


def test_without_ocsp_the_leaves_name_no_responder(acme_server: AcmeServer,
                                                   tmp_path: Path) -> None:
    """Off by default: no OCSP URL in the AIA, only caIssuers."""
    lego = Lego(acme_server, tmp_path / "lego")
    expect_ok(lego("run")[0], acme_server)
    leaf = load_certs(lego.certificate(".crt"))[0]
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_method for d in aia] == [AuthorityInformationAccessOID.CA_ISSUERS]
