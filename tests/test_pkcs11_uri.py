"""PKCS#11 URIs (RFC 7512): what the configuration may name a token key with, and what
it may not; the examples of RFC 7512 section 3 included."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import pytest

from acme_ca.errors import PkiError
from acme_ca.pkcs11_uri import Pkcs11Uri, is_pkcs11_uri

# RFC 7512 section 3, each with what this consumer makes of it
RFC_EXAMPLES_ACCEPTED = [
    "pkcs11:",
    "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
    "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
    "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc."
    "?pin-value=the-pin",
    "pkcs11:slot-description=Sun%20Metaslot",
    "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;"
    "library-description=Soft%20Token%20Library;library-version=1.23",
    "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;"
    "id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
]
RFC_EXAMPLES_REFUSED = [  # (example, what the one-line reason says)
    ("pkcs11:object=my-pubkey;type=public", "type=public"),
    ("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;"
     "model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial="
     "?pin-source=file:/etc/token_pin", "type=cert"),
    ("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11", "module-name"),
    ("pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
     "type=cert"),
    ("pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;"
     "object=my-certificate;type=cert", "type=cert"),
    # a vendor attribute (2.3 names them without the drafts' x- prefix): 2.5 has an
    # unrecognised path attribute match nothing, so it is refused up front
    ("pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a"
     "?pin-source=file:/etc/token_pin&vendor-bbb=value-b", "unknown attribute 'vendor-aaa'"),
]


@pytest.mark.parametrize("text", RFC_EXAMPLES_ACCEPTED)
def test_rfc7512_section3_examples_parse(text: str) -> None:
    uri = Pkcs11Uri.parse(text)
    assert uri.text == text
    # str() is a URI naming the same thing, less any pin-value
    assert Pkcs11Uri.parse(str(uri)) == dataclasses.replace(uri, pin_value=None)


@pytest.mark.parametrize(("text", "reason"), RFC_EXAMPLES_REFUSED)
def test_rfc7512_section3_examples_this_consumer_refuses(text: str, reason: str) -> None:
    """The URI names the private key the CA signs with: a certificate or a public key
    is not that; a library named by module-name is not located here."""
    with pytest.raises(ValueError, match=reason):
        Pkcs11Uri.parse(text)


def test_rfc7512_section3_values_decode_as_the_rfc_says() -> None:
    """2.3: percent-decoded values, text as UTF-8, ``id`` as bytes (case-insensitive hex)."""
    uri = Pkcs11Uri.parse(
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;"
        "model=1.0;object=my-certificate;type=private;id=%69%95%3E%5C%F4%BD%EC%91;serial="
        "?pin-source=file:/etc/token_pin")
    assert uri.token == "The Software PKCS#11 Softtoken"
    assert uri.object == "my-certificate"
    assert uri.object_id == bytes.fromhex("69953E5CF4BDEC91")
    assert uri.attribute("manufacturer") == "Snake Oil, Inc."
    assert uri.attribute("model") == "1.0"
    assert uri.attribute("serial") == ""
    assert uri.attribute("type") == "private"
    assert uri.pin_source == Path("/etc/token_pin")

    joe = Pkcs11Uri.parse("pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;"
                          "id=%01%02%03%Ba%dd%Ca%fe%04%05%06")
    assert joe.token == "My token% created by Joe"
    assert joe.object_id == bytes.fromhex("010203badd cafe 040506".replace(" ", ""))
    assert Pkcs11Uri.parse(
        "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=k").token == \
        "A name with a substring %;"
    assert Pkcs11Uri.parse(
        "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1").token == \
        "Name with a small A with acute: \u00e1"
    assert Pkcs11Uri.parse("pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;"
                           "library-version=1.23").attribute("library-version") == "1.23"


def test_the_configuration_example() -> None:
    uri = Pkcs11Uri.parse(
        "pkcs11:token=acme-ca;object=intermediate;type=private?pin-source=file:/run/secrets/pin")
    assert (uri.token, uri.object, uri.object_id) == ("acme-ca", "intermediate", None)
    assert uri.pin_source == Path("/run/secrets/pin")
    assert uri.module_path is None
    assert is_pkcs11_uri(uri.text) and not is_pkcs11_uri("/etc/acme-ca/intermediate.key")


@pytest.mark.parametrize(("text", "reason"), [
    # 2.3: a path attribute MUST NOT repeat; the standard query attributes are single
    ("pkcs11:token=a;token=b", "token is repeated"),
    ("pkcs11:object=k?pin-source=/a&pin-source=/b", "pin-source is repeated"),
    # 2.3: every attribute is name=value, with a name
    ("pkcs11:=acme-ca", "empty name"),
    ("pkcs11:token", "not name=value"),
    ("pkcs11:token=a;;object=k", "empty attribute"),
    ("pkcs11:token=a;", "empty attribute"),
    # 2.3: pct-encoded is "%" HEXDIG HEXDIG
    ("pkcs11:token=100%", "bad percent escape"),
    ("pkcs11:token=a%zzb", "bad percent escape"),
    ("pkcs11:id=%0", "bad percent escape"),
    # 2.3: text values are UTF-8
    ("pkcs11:token=%C3%28", "not UTF-8"),
    # 2.3: what a component admits only percent-encoded
    ("pkcs11:token=acme ca", "percent-encoded"),
    ("pkcs11:object=a/b", "percent-encoded"),
    # 2.3 grammar of the typed attributes
    ("pkcs11:slot-id=one", "slot-id"),
    ("pkcs11:library-version=1.", "library-version"),
    ("pkcs11:type=key", "type=key"),
    # an attribute in the wrong component, an unknown one (2.5: it would match nothing)
    ("pkcs11:pin-source=/run/pin", "belongs in the query"),
    ("pkcs11:object=k?token=acme-ca", "belongs in the path"),
    ("pkcs11:token=acme-ca;objet=intermediate", "unknown attribute 'objet'"),
    ("pkcs11:token=acme-ca;x-vendor=1", "unknown attribute 'x-vendor'"),
    ("pkcs11:object=k?pin-sorce=file:/run/pin", "unknown attribute 'pin-sorce'"),
    ("pkcs11:token=a;b.c=d", "not an attribute name"),
    # the query attributes' rules here
    ("pkcs11:object=k?pin-source=/a&pin-value=1234", "not both"),
    ("pkcs11:object=k?pin-source=run/pin", "absolute path"),
    ("pkcs11:object=k?pin-source=file:run/pin", "absolute path"),
    ("pkcs11:object=k?pin-source=file://host/run/pin", "not a local file"),
    ("pkcs11:object=k?pin-source=%7C/usr/bin/get-pin", "command"),
    ("pkcs11:object=k?module-path=libsofthsm2.so", "not an absolute path"),
    # a NUL is in no file name (POSIX 3.170): said here, not by a ValueError at first use
    ("pkcs11:object=k?pin-source=file:/run/pin%00x", "pin-source has a NUL"),
    ("pkcs11:object=k?module-path=/usr/lib/a%00.so", "module-path has a NUL"),
    ("file:/etc/key.pem", "pkcs11:"),
])
def test_refused_with_one_line(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        Pkcs11Uri.parse(text)
    assert "\n" not in str(caught.value)


def test_the_scheme_is_case_insensitive() -> None:
    """RFC 3986 3.1 (schemes are case-insensitive) and RFC 5234 2.3 (so is the ABNF's
    "pkcs11:"): a PKCS11: URI is a URI, never taken for a key file's relative path,
    whose "cannot read" message would carry its pin-value."""
    assert is_pkcs11_uri("PKCS11:token=acme-ca;object=k?pin-value=1234")
    uri = Pkcs11Uri.parse("PKCS11:token=acme-ca;object=k?pin-value=1234")
    assert (uri.token, uri.object, uri.pin()) == ("acme-ca", "k", "1234")


def test_attribute_names_are_case_insensitive() -> None:
    """RFC 5234 2.3: the ABNF's quoted names match either case, so ``PIN-VALUE`` is
    held to pin-value's rules and never passes as an unknown attribute."""
    uri = Pkcs11Uri.parse("pkcs11:Token=acme-ca;OBJECT=k?PIN-VALUE=1234")
    assert (uri.token, uri.object, uri.pin()) == ("acme-ca", "k", "1234")
    with pytest.raises(ValueError, match="not both"):
        Pkcs11Uri.parse("pkcs11:object=k?pin-source=/a&PIN-VALUE=1234")


@pytest.mark.parametrize("source", [
    "file:/run/secrets/pin", "file:///run/secrets/pin", "file://localhost/run/secrets/pin",
    "/run/secrets/pin", "file:%2Frun%2Fsecrets%2Fpin",
])
def test_pin_source_forms(source: str) -> None:
    """2.4: a URI naming the object holding the PIN (here: a file), or a path."""
    assert Pkcs11Uri.parse(f"pkcs11:object=k?pin-source={source}").pin_source == \
        Path("/run/secrets/pin")


def test_pin_reads_the_file_and_drops_one_newline(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("12 34\n\n")
    uri = Pkcs11Uri.parse(f"pkcs11:object=k?pin-source=file:{pin_file}")
    assert uri.pin() == "12 34\n"
    pin_file.write_text("1234")
    assert uri.pin() == "1234"
    pin_file.write_text("1234\r\n")
    assert uri.pin() == "1234"


def test_pin_value_and_no_pin() -> None:
    assert Pkcs11Uri.parse("pkcs11:object=k?pin-value=12%2634").pin() == "12&34"
    assert Pkcs11Uri.parse("pkcs11:object=k").pin() is None


def test_an_unreadable_pin_file_is_a_pki_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-pin"
    uri = Pkcs11Uri.parse(f"pkcs11:object=k?pin-source={missing}")
    with pytest.raises(PkiError, match=f"PIN file {missing}.*No such file") as caught:
        uri.pin()
    assert "\n" not in str(caught.value)


def test_a_pin_file_that_is_not_a_regular_file_is_refused_without_blocking(
        tmp_path: Path) -> None:
    """A FIFO as pin-source blocked the server's start (and each reconnect) until a
    writer came; a device such as /dev/zero filled the memory: the PIN is read only
    from a regular file, and only so much of it."""
    fifo = tmp_path / "pin"
    os.mkfifo(fifo)
    uri = Pkcs11Uri.parse(f"pkcs11:object=k?pin-source={fifo}")
    outcome: list[BaseException | str | None] = []
    reader = threading.Thread(target=lambda: outcome.append(_pin_or_error(uri)), daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # release the blocked reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
        pytest.fail("reading a FIFO as the PIN file blocked")
    assert isinstance(outcome[0], PkiError)
    assert f"PIN file {fifo}" in str(outcome[0]) and "not a regular file" in str(outcome[0])


def test_a_pin_file_too_large_to_be_a_pin_is_refused(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("1" * 100_000)
    uri = Pkcs11Uri.parse(f"pkcs11:object=k?pin-source={pin_file}")
    with pytest.raises(PkiError, match=f"PIN file {pin_file} .*is larger than"):
        uri.pin()


def _pin_or_error(uri: Pkcs11Uri) -> BaseException | str | None:
    try:
        return uri.pin()
    except Exception as exc:
        return exc


def test_a_bad_escape_in_pin_value_does_not_echo_the_pin() -> None:
    """The refusal of a pin-value is a one-line message for logs: none of the PIN in it."""
    with pytest.raises(ValueError, match="pin-value value has a bad percent escape") as caught:
        Pkcs11Uri.parse("pkcs11:object=k?pin-value=zq%Q")
    assert "Q" not in str(caught.value)
    with pytest.raises(ValueError, match="admits only percent-encoded") as caught:
        Pkcs11Uri.parse("pkcs11:object=k?pin-value=zq#W")
    assert "#" not in str(caught.value)


def test_str_never_shows_a_pin_value() -> None:
    """A PIN in a URI is a secret; messages and logs get str()."""
    uri = Pkcs11Uri.parse("pkcs11:token=acme-ca;object=k?pin-value=s3cret-pin")
    assert "s3cret-pin" not in str(uri)
    assert "s3cret-pin" not in repr(uri)
    assert "pin-value" not in str(uri)
    assert str(uri) == "pkcs11:token=acme-ca;object=k"


def test_str_round_trips_and_encodes() -> None:
    uri = Pkcs11Uri.parse(
        "pkcs11:token=My%20token%25;serial=42;object=inter%3Bmediate;type=private;id=%0A%FF"
        "?pin-source=/run/my%20pin&module-path=/usr/lib/softhsm/libsofthsm2.so")
    text = str(uri)
    assert text == ("pkcs11:token=My%20token%25;serial=42;type=private;object=inter%3Bmediate;"
                    "id=%0A%FF?pin-source=file:/run/my%20pin"
                    "&module-path=/usr/lib/softhsm/libsofthsm2.so")
    assert Pkcs11Uri.parse(text) == uri


def test_with_id_pins_one_object() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=acme-ca;object=intermediate?pin-source=/run/pin")
    pinned = uri.with_id(b"\x00\x01\xfe")
    assert pinned.object_id == b"\x00\x01\xfe"
    assert (pinned.token, pinned.object, pinned.pin_source) == \
        (uri.token, uri.object, uri.pin_source)
    assert pinned.text == str(pinned)
    assert "id=%00%01%FE" in str(pinned)
    assert Pkcs11Uri.parse(str(pinned)) == pinned
    assert uri.object_id is None  # the original is unchanged


def test_with_attribute_narrows_a_uri_and_encodes_the_value() -> None:
    """RFC 7512 2.3: a serial with a space (PKCS#11 pads serialNumber with spaces) is
    written percent-encoded, a serial already given is replaced, and the pin-value
    stays out of the text."""
    uri = Pkcs11Uri.parse("pkcs11:token=t;serial=old;object=k?pin-value=1234")
    narrowed = uri.with_attribute("serial", "AB 12")
    assert str(narrowed) == narrowed.text == "pkcs11:token=t;serial=AB%2012;object=k"
    assert Pkcs11Uri.parse(narrowed.text).attribute("serial") == "AB 12"
    assert narrowed.pin() == "1234" and narrowed.attributes == (("serial", "AB 12"),)
