"""CSRs: parsing, the self-signature, key strength, and the names they ask for."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from acme_ca.errors import PkiError
from acme_ca.pki.csr import MAX_CSR_BYTES, MAX_NAMES, load_csr, read_csr
from tests import der

MakeCsr = Callable[..., x509.CertificateSigningRequest]


def test_pem_and_der_load_the_same_csr(make_csr: MakeCsr) -> None:
    """sign-csr reads a file in either encoding (allow_pem)."""
    csr = make_csr("www.bluerobin.local")
    assert load_csr(csr.public_bytes(Encoding.PEM), allow_pem=True) == csr
    assert load_csr(csr.public_bytes(Encoding.DER), allow_pem=True) == csr


def test_pem_only_when_allowed(make_csr: MakeCsr) -> None:
    """RFC 8555 7.4: the finalize "csr" field is the base64url of the DER CSR, so the
    ACME path takes DER alone; PEM, with or without text before it, is refused."""
    csr = make_csr("www.bluerobin.local")
    assert load_csr(csr.public_bytes(Encoding.DER)) == csr
    for data in (csr.public_bytes(Encoding.PEM), b"junk\n" + csr.public_bytes(Encoding.PEM)):
        with pytest.raises(PkiError, match="not a readable certificate signing request"):
            load_csr(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        b"\x30\x03\x02\x01\x01",  # DER, but an INTEGER
    ],
    ids=["empty", "garbage", "bad PEM", "bad DER"],
)
def test_garbage_is_a_pki_error(data: bytes) -> None:
    with pytest.raises(PkiError, match="not a readable certificate signing request"):
        load_csr(data)


def test_an_oversized_csr_is_refused_before_parsing() -> None:
    with pytest.raises(PkiError, match="larger than"):
        load_csr(b"0" * (MAX_CSR_BYTES + 1))


def test_a_tampered_signature_is_refused(make_csr: MakeCsr) -> None:
    der = bytearray(make_csr("www.bluerobin.local").public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature BIT STRING
    csr = load_csr(bytes(der))  # still well-formed DER
    with pytest.raises(PkiError, match="signature does not verify"):
        read_csr(csr)


def test_a_tampered_body_is_refused(make_csr: MakeCsr) -> None:
    der = make_csr("www.bluerobin.local").public_bytes(Encoding.DER)
    csr = load_csr(der.replace(b"www.bluerobin.local", b"www.bluerobin.loca1"))
    with pytest.raises(PkiError, match="signature does not verify"):
        read_csr(csr)


def test_a_cn_only_csr_gets_its_cn_as_san(make_csr: MakeCsr) -> None:
    """The guide's `-subj "/C=US/O=BlueRobin/CN=postgres.bluerobin.local"` CSR."""
    contents = read_csr(make_csr(cn="Postgres.BlueRobin.Local"))
    assert contents.dns_names == ("postgres.bluerobin.local",)
    assert contents.common_name == "postgres.bluerobin.local"
    assert contents.ip_addresses == ()


def test_a_cn_only_csr_with_an_address_gets_an_ip_san(make_csr: MakeCsr) -> None:
    contents = read_csr(make_csr(cn="10.0.0.5"))
    assert contents.ip_addresses == (ipaddress.ip_address("10.0.0.5"),)
    assert contents.dns_names == ()


def test_a_cn_outside_the_san_is_not_added(make_csr: MakeCsr) -> None:
    contents = read_csr(make_csr("api.bluerobin.local", cn="other.bluerobin.local"))
    assert contents.dns_names == ("api.bluerobin.local",)
    assert contents.common_name == "other.bluerobin.local"


def test_a_cn_only_csr_without_cn_as_san_names_nothing(make_csr: MakeCsr) -> None:
    with pytest.raises(PkiError, match="names no DNS name or IP address"):
        read_csr(make_csr(cn="postgres.bluerobin.local"), cn_as_san=False)


def test_a_csr_without_names_is_refused(make_csr: MakeCsr) -> None:
    with pytest.raises(PkiError, match="names no DNS name or IP address"):
        read_csr(make_csr())


def test_dns_names_are_lowercased_and_deduplicated_in_order(make_csr: MakeCsr) -> None:
    csr = make_csr(
        "WWW.BlueRobin.local",
        "api.bluerobin.local",
        "www.bluerobin.local",
        extra=(
            x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
            x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
        ),
    )
    contents = read_csr(csr)
    assert contents.dns_names == ("www.bluerobin.local", "api.bluerobin.local")
    assert contents.ip_addresses == (ipaddress.ip_address("10.0.0.5"),)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (x509.RFC822Name("ops@bluerobin.local"), "RFC822Name"),
        (x509.UniformResourceIdentifier("https://bluerobin.local/"), "UniformResourceIdentifier"),
        (
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])),
            "DirectoryName",
        ),
    ],
)
def test_other_san_types_are_refused(make_csr: MakeCsr, name: x509.GeneralName, kind: str) -> None:
    with pytest.raises(PkiError, match=f"asks for a {kind} name"):
        read_csr(make_csr("www.bluerobin.local", extra=(name,)))


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "RSA key of 1024 bits"),  # noqa: S505
        (lambda: rsa.generate_private_key(3, 2048), "exponent must be 65537"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "ECDSA curve secp521r1"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "ECDSA curve secp256k1"),
    ],
    ids=["rsa1024", "rsa-e3", "p521", "secp256k1"],
)
def test_weak_or_unusual_keys_are_refused(
    make_csr: MakeCsr, key: Callable[[], object], fragment: str
) -> None:
    with pytest.raises(PkiError, match=fragment):
        read_csr(make_csr("www.bluerobin.local", key=key()))


def test_ed25519_keys_are_refused() -> None:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.bluerobin.local")]))
        .sign(ed25519.Ed25519PrivateKey.generate(), None)
    )
    with pytest.raises(PkiError, match="Ed25519 keys are not allowed"):
        read_csr(csr)


@pytest.mark.parametrize(
    "key",
    [
        lambda: rsa.generate_private_key(65537, 2048),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["rsa2048", "p384"],
)
def test_accepted_keys(make_csr: MakeCsr, key: Callable[[], rsa.RSAPrivateKey]) -> None:
    private = key()
    contents = read_csr(make_csr("www.bluerobin.local", key=private))
    assert contents.public_key == private.public_key()


def test_at_most_max_names(make_csr: MakeCsr) -> None:
    names = [f"h{i}.bluerobin.local" for i in range(MAX_NAMES + 1)]
    assert len(read_csr(make_csr(*names[:MAX_NAMES])).dns_names) == MAX_NAMES
    with pytest.raises(PkiError, match=f"asks for {MAX_NAMES + 1} names; at most {MAX_NAMES}"):
        read_csr(make_csr(*names))


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        (b"\xff\xfeweb.bluerobin.local", der.UTF8_STRING),
        ("wéb.bluerobin.local".encode("latin-1"), der.TELETEX_STRING),
        (b"\x00web.bluerobin.local", der.BIT_STRING),
    ],
    ids=["utf8-invalid", "teletex-latin1", "bit-string"],
)
def test_an_unreadable_subject_is_a_pki_error(value: bytes, tag: int) -> None:
    """RFC 5280 4.1.2.6 (the subject's DirectoryString) and RFC 8555 7.4 (badCSR): a
    common name that is not valid text of its string type, or not a string at all, is
    refused like any other malformed CSR, never an unhandled exception."""
    csr = load_csr(der.csr(der.subject(value, tag), der.dns_sans("web.bluerobin.local")))
    with pytest.raises(PkiError, match="subject"):
        read_csr(csr)


@pytest.mark.parametrize(
    ("sans", "cn"),
    [
        (("\u212a.bluerobin.local",), None),  # KELVIN SIGN: lower() makes it "k"
        (("k.bluerobin.local",), "\u212a.bluerobin.local"),
        (("bücher.bluerobin.local",), None),
    ],
    ids=["kelvin-san", "kelvin-cn", "u-label-san"],
)
def test_names_that_are_not_ascii_are_refused(sans: tuple[str, ...], cn: str | None) -> None:
    """RFC 5280 4.2.1.6 (a dNSName is an IA5String in the preferred name syntax;
    internationalised names as A-labels, RFC 5890) and RFC 8555 7.4: a name that is not
    ASCII is badCSR, never folded by Unicode case rules into another name."""
    csr = load_csr(der.csr(der.subject(cn), der.dns_sans(*sans)))
    with pytest.raises(PkiError, match="not ASCII"):
        read_csr(csr)


@pytest.mark.parametrize("name", ["web.bluerobin.local.", "web.bluerobin.local.."])
def test_names_ending_in_a_dot_are_refused(name: str) -> None:
    """RFC 5280 4.2.1.6 (the preferred name syntax has no trailing dot) and RFC 8555
    7.1.4, as newOrder refuses an identifier ending in a dot: badCSR, not stripped."""
    with pytest.raises(PkiError, match="ends in a dot"):
        read_csr(load_csr(der.csr(der.subject(None), der.dns_sans(name))))
    with pytest.raises(PkiError, match="ends in a dot"):
        read_csr(load_csr(der.csr(der.subject(name))))
