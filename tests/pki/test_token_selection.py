"""Which token a PKCS#11 URI names (pki/token_session.py ``_token``, RFC 7512 2.5: each
attribute a URI gives must match, the library's as well as the token's and the slot's),
against real SoftHSM2 tokens: a URI that names another library is refused, and a URI
that several tokens match is refused with the serials that tell them apart."""

from __future__ import annotations

from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.keys import KeyType
from acme_ca.pki.token import generate_token_key
from tests.pki.token_helpers import one_line_error
from tests.softhsm import SoftHsm


def uri(softhsm: SoftHsm, attributes: str) -> Pkcs11Uri:
    return Pkcs11Uri.parse(f"pkcs11:{attributes};object=k?pin-source=file:{softhsm.pin_file}")


def refused(softhsm: SoftHsm, attributes: str, match: str) -> str:
    """The one line (matching ``match``) a key made through ``attributes`` is refused with."""
    return one_line_error(
        lambda: generate_token_key(uri(softhsm, attributes), softhsm.module, KeyType.EC_P256),
        match)


def test_a_uri_naming_another_library_is_refused(softhsm: SoftHsm) -> None:
    """RFC 7512 2.3 library-manufacturer, library-version: SoftHSM2's module is not
    "Snake Oil" nor version 99; its own manufacturer matches."""
    refused(softhsm, f"token={softhsm.label};library-manufacturer=Snake%20Oil",
            r"is not the library .* names \(library-manufacturer is 'SoftHSM'\)")
    refused(softhsm, f"token={softhsm.label};library-version=99", "is not the library")
    generate_token_key(uri(softhsm, f"token={softhsm.label};library-manufacturer=SoftHSM"),
                       softhsm.module, KeyType.EC_P256)


def test_two_tokens_with_one_label_are_told_apart_by_serial(softhsm: SoftHsm) -> None:
    """Two tokens labelled alike: a URI by label alone is refused, and the message
    offers the URI narrowed by each serial (RFC 7512 2.3), each of which picks its own
    token as it is written."""
    softhsm.add_token()  # labelled alike
    message = refused(softhsm, f"token={softhsm.label}", "^2 tokens match ")
    assert message.startswith(f"2 tokens match pkcs11:token={softhsm.label};"), message
    _, _, offered = message.partition("name one by its serial, as in ")
    narrowed = [Pkcs11Uri.parse(text) for text in offered.split(" or ")]
    serials = {one.attribute("serial") for one in narrowed}
    assert len(narrowed) == len(serials) == 2 and None not in serials, message
    for one in narrowed:  # each URI offered, as given, picks its own token
        _, pinned = generate_token_key(one, softhsm.module, KeyType.EC_P256)
        assert pinned.attribute("serial") == one.attribute("serial")
