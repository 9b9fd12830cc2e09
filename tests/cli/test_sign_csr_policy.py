"""`acme-ca sign-csr` applies the policy ACME applies: the same identifier policy
(allowed and denied domains, IP networks, the intermediate's name constraints) and the
same key policy (weak keys, the blocklist). A refusal is one line and exit status 1."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.pki import files
from tests.cli.conftest import POLICY, ROOT_PASS, Run, assert_one_line_error, init_ca
from tests.conftest import hierarchy_paths, reissue_intermediate
from tests.weak_keys import close_primes_key, small_factor_key, spki_sha256_hex

MakeCsr = Callable[..., x509.CertificateSigningRequest]



@pytest.fixture
def config(tmp_path: Path, run: Run) -> Path:
    """A CA made by `init` under POLICY: its intermediate permits bluerobin.local and
    10.0.0.0/8 (name constraints from the configuration)."""
    return init_ca(run, tmp_path, POLICY)


def write_csr(tmp_path: Path, make_csr: MakeCsr, *dns: str, ips: tuple[str, ...] = (),
              key: object = None) -> Path:
    extra = tuple(x509.IPAddress(ipaddress.ip_address(a)) for a in ips)
    path = tmp_path / "host.csr"
    path.write_bytes(make_csr(*dns, extra=extra, key=key).public_bytes(Encoding.PEM))
    return path


def test_a_denied_domain_is_refused_and_every_refusal_is_named(
        run: Run, config: Path, tmp_path: Path, make_csr: MakeCsr) -> None:
    """[policy] denied_domains applies to sign-csr as to newOrder (RFC 8555 7.4 policy):
    one line that names each refused name with its reason."""
    csr = write_csr(tmp_path, make_csr, "ok.bluerobin.local", "db.secret.bluerobin.local",
                    "www.example.com")
    code, out, err = run("--config", config, "sign-csr", csr)
    assert_one_line_error(code, err, "db.secret.bluerobin.local is under a denied domain")
    assert "www.example.com is outside policy" in err
    assert "ok.bluerobin.local" not in err
    assert out == ""


def test_an_ip_inside_allowed_ip_networks_is_signed_and_one_outside_refused(
        run: Run, config: Path, tmp_path: Path, make_csr: MakeCsr) -> None:
    """RFC 8738 identifiers by hand: an address inside [policy] allowed_ip_networks gets an
    iPAddress SAN that openssl verifies against the chain (name constraints included,
    RFC 5280 4.2.1.10); one outside is refused."""
    data = tmp_path / "acme-ca-data" / "ca"
    leaf = tmp_path / "ip.crt"
    csr = write_csr(tmp_path, make_csr, "db.bluerobin.local", ips=("10.1.2.3",))
    code, _, err = run("--config", config, "sign-csr", csr, "--out", leaf)
    assert code == 0, err
    (cert,) = files.load_certificates(leaf)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", data / "root-ca.crt", "-untrusted",
         data / "intermediate-ca.crt", "-verify_ip", "10.1.2.3", leaf],
        capture_output=True, text=True, check=False)
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified

    outside = write_csr(tmp_path, make_csr, ips=("192.168.1.1",))
    code, out, err = run("--config", config, "sign-csr", outside)
    assert_one_line_error(code, err, "IP address 192.168.1.1 is outside policy")
    assert out == ""


def test_a_name_outside_the_name_constraints_is_refused(
        run: Run, config: Path, tmp_path: Path, make_csr: MakeCsr) -> None:
    """A domain added to [policy] after `init` is not in the intermediate's name
    constraints: the certificate would not verify (RFC 5280 4.2.1.10), so sign-csr
    refuses it before signing, as newOrder does."""
    config.write_text(POLICY.replace('["bluerobin.local"]', '["bluerobin.local", "example.org"]'))
    csr = write_csr(tmp_path, make_csr, "www.example.org")
    code, out, err = run("--config", config, "sign-csr", csr)
    assert_one_line_error(
        code, err, "www.example.org is outside the intermediate CA's name constraints")
    assert out == ""


@pytest.mark.parametrize(("key", "fragment"), [
    (close_primes_key, "Fermat"),
    (small_factor_key, "divisible by the small prime 3"),
], ids=["close primes", "small factor"])
def test_a_weak_rsa_key_is_refused(run: Run, config: Path, tmp_path: Path, make_csr: MakeCsr,
                                   key: Callable[[], object], fragment: str) -> None:
    """CA/B Baseline Requirements 6.1.1.3 and 6.1.6, as Boulder's goodkey: a key whose
    modulus is easily factored is refused, and the refusal says why."""
    csr = write_csr(tmp_path, make_csr, "db.bluerobin.local", key=key())
    code, out, err = run("--config", config, "sign-csr", csr)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_a_blocklisted_key_is_refused(run: Run, config: Path, tmp_path: Path,
                                      make_csr: MakeCsr) -> None:
    """[policy] blocked_keys_file: a key whose SPKI hash is listed is refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    blocklist = tmp_path / "blocked-keys.txt"
    blocklist.write_text(f"# known-compromised\n{spki_sha256_hex(key)}\n")
    config.write_text(POLICY + f'blocked_keys_file = "{blocklist}"\n')
    csr = write_csr(tmp_path, make_csr, "db.bluerobin.local", key=key)
    code, out, err = run("--config", config, "sign-csr", csr)
    assert_one_line_error(code, err, "blocklist")
    assert out == ""


def test_an_ipv4_mapped_address_is_refused(run: Run, tmp_path: Path, make_csr: MakeCsr) -> None:
    """RFC 8738 3 / RFC 4291 2.5.5.2: with every IPv6 address allowed, ::ffff:10.0.0.1
    (which Go verifies as 10.0.0.1, outside the allowed IPv4 network) is refused."""
    path = init_ca(run, tmp_path, POLICY.replace('["10.0.0.0/8"]', '["192.168.0.0/16", "::/0"]'))
    csr = write_csr(tmp_path, make_csr, ips=("::ffff:10.0.0.1",))
    code, out, err = run("--config", path, "sign-csr", csr)
    assert_one_line_error(code, err, "IPv4-mapped IPv6 address")
    assert out == ""


def test_a_wildcard_over_a_denied_domain_is_refused(
        run: Run, config: Path, tmp_path: Path, make_csr: MakeCsr) -> None:
    """*.bluerobin.local would be valid for the denied secret.bluerobin.local (RFC 6125
    6.4.3): sign-csr refuses it, as newOrder does."""
    csr = write_csr(tmp_path, make_csr, "*.bluerobin.local")
    code, out, err = run("--config", config, "sign-csr", csr)
    assert_one_line_error(code, err, "*.bluerobin.local would also cover a denied domain")
    assert out == ""


def test_a_wildcard_over_an_excluded_subtree_is_refused(
        run: Run, config: Path, tmp_path: Path, make_csr: MakeCsr) -> None:
    """An intermediate made elsewhere that excludes a subtree (RFC 5280 4.2.1.10): a
    wildcard whose base holds the subtree is refused before signing."""
    config.write_text(POLICY.replace('denied_domains = ["secret.bluerobin.local"]\n', ""))
    reissue_intermediate(hierarchy_paths(tmp_path / "acme-ca-data"), x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("bluerobin.local")],
        excluded_subtrees=[x509.DNSName("secret.bluerobin.local")]),
        root_passphrase=ROOT_PASS.encode())
    csr = write_csr(tmp_path, make_csr, "*.bluerobin.local")
    code, out, err = run("--config", config, "sign-csr", csr)
    assert_one_line_error(
        code, err, "*.bluerobin.local is outside the intermediate CA's name constraints")
    assert out == ""
    code, _, err = run("--config", config, "sign-csr",
                       write_csr(tmp_path, make_csr, "*.web.bluerobin.local"))
    assert code == 0, err
