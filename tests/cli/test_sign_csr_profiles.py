"""`acme-ca sign-csr --profile NAME`: the profiles of the configuration ([profiles.NAME],
draft-ietf-acme-profiles as ACME serves them), with their usages, validity, key types
and domains; `both`, the old name of mtls, still read for the scripts that name it."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from acme_ca.domain.models import serial_hex
from acme_ca.store import open_store
from tests.cli.conftest import POLICY, Run, assert_one_line_error, init_ca

PROFILES = POLICY + """
[profiles.client]
default_validity = "24h"
max_validity = "2d"
key_types = ["ecdsa-p384"]
allowed_domains = ["workers.bluerobin.local"]
identifier_types = ["dns"]
[profiles.retiring]
extended_key_usages = ["serverAuth"]
retired = true
"""
SERVER = [ExtendedKeyUsageOID.SERVER_AUTH]
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]


@pytest.fixture
def config(run: Run, tmp_path: Path) -> Path:
    return init_ca(run, tmp_path, PROFILES)


@pytest.fixture
def csr(tmp_path: Path, make_csr: Callable[..., x509.CertificateSigningRequest]
        ) -> Callable[..., Path]:
    def write(*names: str, key: object = None, extra: tuple[x509.GeneralName, ...] = ()
              ) -> Path:
        path = tmp_path / "host.csr"
        request = make_csr(*names, key=key or ec.generate_private_key(ec.SECP384R1()),
                           extra=extra)
        path.write_bytes(request.public_bytes(Encoding.PEM))
        return path

    return write


def signed(out: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(out.encode())


def usages(leaf: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def recorded_profile(tmp_path: Path, leaf: x509.Certificate) -> str:
    async def read() -> str:
        store = await open_store(f"sqlite:///{tmp_path / 'acme-ca-data' / 'acme-ca.db'}")
        try:
            return (await store.get_certificate(serial_hex(leaf.serial_number))).profile
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_configured_profile_decides_usages_validity_and_the_record(
        run: Run, config: Path, csr: Callable[..., Path], tmp_path: Path) -> None:
    code, out, err = run("--config", config, "sign-csr", csr("a.workers.bluerobin.local"),
                         "--profile", "client")
    assert code == 0, err
    leaf = signed(out)
    assert usages(leaf) == CLIENT
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=24)
    assert recorded_profile(tmp_path, leaf) == "client"


@pytest.mark.parametrize(("name", "expected"), [(None, SERVER), ("mtls", SERVER + CLIENT),
                                                ("both", SERVER + CLIENT)])
def test_the_default_is_server_and_both_is_read_as_mtls(
        run: Run, config: Path, csr: Callable[..., Path], tmp_path: Path,
        name: str | None, expected: list[x509.ObjectIdentifier]) -> None:
    args = () if name is None else ("--profile", name)
    code, out, err = run("--config", config, "sign-csr", csr("db.bluerobin.local"), *args)
    assert code == 0, err
    assert usages(signed(out)) == expected
    assert recorded_profile(tmp_path, signed(out)) == ("server" if name is None else "mtls")


def test_without_profile_the_configured_default_profile(
        run: Run, tmp_path: Path, csr: Callable[..., Path]) -> None:
    """sign-csr without --profile uses [acme] default_profile, as an order naming none
    gets it (draft-ietf-acme-profiles 4), not server, which may be retired."""
    config = init_ca(run, tmp_path, POLICY + """
[acme]
default_profile = "shortlived"
[profiles.shortlived]
extended_key_usages = ["clientAuth"]
default_validity = "6d"
max_validity = "6d"
[profiles.server]
retired = true
""")
    code, out, err = run("--config", config, "sign-csr", csr("db.bluerobin.local"))
    assert code == 0, err
    leaf = signed(out)
    assert usages(leaf) == CLIENT
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=6)
    assert recorded_profile(tmp_path, leaf) == "shortlived"


@pytest.mark.parametrize(("names", "args", "fragment"), [
    (("db.bluerobin.local",), ("--profile", "nothing"),
     "--profile: profile 'nothing' is unknown (offered: client, mtls, server)"),
    (("db.bluerobin.local",), ("--profile", "retiring"), "profile 'retiring' is retired"),
    (("db.bluerobin.local",), ("--profile", "client"),
     "db.bluerobin.local is outside the domains of profile client"),
    (("a.workers.bluerobin.local",), ("--profile", "client", "--validity", "3d"),
     "exceeds profiles.client.max_validity"),
])
def test_the_profile_rules_refuse(run: Run, config: Path, csr: Callable[..., Path],
                                  names: tuple[str, ...], args: tuple[str, ...],
                                  fragment: str) -> None:
    code, out, err = run("--config", config, "sign-csr", csr(*names), *args)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_the_profile_key_types_and_identifier_types(
        run: Run, config: Path, csr: Callable[..., Path]) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    code, _, err = run("--config", config, "sign-csr",
                       csr("a.workers.bluerobin.local", key=p256), "--profile", "client")
    assert_one_line_error(code, err, "ECDSA P-256 key is not allowed by profile client "
                          "(allowed: ecdsa-p384)")
    address = x509.IPAddress(ipaddress.ip_address("10.0.0.5"))
    code, _, err = run("--config", config, "sign-csr",
                       csr("a.workers.bluerobin.local", extra=(address,)), "--profile", "client")
    assert_one_line_error(code, err, "profile client does not issue for ip identifiers")


def test_a_signed_leaf_names_the_crl_and_issuer_urls_of_the_configuration(
        run: Run, tmp_path: Path, csr: Callable[..., Path]) -> None:
    """RFC 5280 4.2.1.13 and 4.2.2.1: a sign-csr certificate, which has no account to
    revoke it with, points relying parties at the CRL ([revocation] base_url) as ACME
    leaves do; OCSP only when [revocation] ocsp is on."""
    config = init_ca(run, tmp_path,
                     POLICY + '[revocation]\nbase_url = "http://crl.bluerobin.local"\n')
    code, out, err = run("--config", config, "sign-csr", csr("web.bluerobin.local"))
    assert code == 0, err
    leaf = signed(out)
    intermediate = x509.load_pem_x509_certificate(
        (tmp_path / "acme-ca-data" / "ca" / "intermediate-ca.crt").read_bytes())
    short = intermediate.fingerprint(hashes.SHA256()).hex()[:16]
    (point,) = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert point.full_name == [
        x509.UniformResourceIdentifier(f"http://crl.bluerobin.local/crl/{short}.crl")]
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (AuthorityInformationAccessOID.CA_ISSUERS, f"http://crl.bluerobin.local/ca/{short}.crt")]
