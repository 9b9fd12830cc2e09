"""PKCS#11 URIs (RFC 7512): how the configuration names a key on a token.

    pkcs11:token=acme-ca;object=intermediate;type=private?pin-source=file:/run/secrets/pin

The path names the token (``token``, ``manufacturer``, ``serial``, ``model``,
``slot-id``, ...) and the object (``object``: CKA_LABEL, ``id``: CKA_ID as
percent-encoded bytes, ``type``); the query says where the PIN is (``pin-source``, a
file; ``pin-value``, discouraged by RFC 7512 2.3 as it puts the PIN in the file) and,
optionally, which library (``module-path``). ``str()`` of a URI never shows a PIN value.

ISSUE 14 SKELETON: the parser is the token helper's (fix/token) to write, with tests
citing RFC 7512 sections; the dataclass shape below is the contract the others build on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SCHEME = "pkcs11:"


def is_pkcs11_uri(value: str) -> bool:
    """Whether a configuration value names a key on a token rather than a file."""
    return value.startswith(SCHEME)


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """One parsed URI. ``attributes``: the path's attributes, percent-decoded (``id`` as
    bytes in ``object_id``); ``text``: the URI as given, for round trips."""

    token: str | None = None
    object: str | None = None  # CKA_LABEL of the key
    object_id: bytes | None = None  # CKA_ID
    attributes: tuple[tuple[str, str], ...] = ()  # the other path attributes, decoded
    pin_source: Path | None = None
    pin_value: str | None = field(default=None, repr=False)
    module_path: Path | None = None
    text: str = field(default="", repr=False)

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """ConfigError-free parse: ValueError with a one-line reason (the config layer
        prefixes the key's name)."""
        raise NotImplementedError("issue 14: fix/token writes the RFC 7512 parser")

    def pin(self) -> str | None:
        """The PIN: read from ``pin_source`` (trailing newline dropped), or ``pin_value``;
        None when the URI names neither (a token without login). PkiError naming the
        file when it cannot be read."""
        raise NotImplementedError("issue 14: fix/token")

    def with_id(self, object_id: bytes) -> Pkcs11Uri:
        """This URI pinned to one object (its CKA_ID): how an archived intermediate's key
        is named once a newer key carries the same label."""
        raise NotImplementedError("issue 14: fix/token")

    def __str__(self) -> str:
        """The URI without any pin-value (safe in messages and logs)."""
        raise NotImplementedError("issue 14: fix/token")
