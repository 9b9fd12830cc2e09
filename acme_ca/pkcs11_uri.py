"""PKCS#11 URIs (RFC 7512): how the configuration names a key on a token.

    pkcs11:token=acme-ca;object=intermediate;type=private?pin-source=file:/run/secrets/pin

The path names the token (``token``, ``manufacturer``, ``serial``, ``model``,
``slot-id``, ...) and the object (``object``: CKA_LABEL, ``id``: CKA_ID as
percent-encoded bytes, ``type``); the query says where the PIN is (``pin-source``, a
file; ``pin-value``, which RFC 7512's security considerations warn against: it puts
the PIN in the configuration) and, optionally, which library (``module-path``).
``str()`` of a URI never shows a PIN value.

What this parser refuses, each with one line (the config layer prefixes the key):

- anything the grammar of RFC 7512 2.3 does not produce: an attribute without ``=``,
  an empty attribute name, an empty run between two delimiters, a character a
  component admits only percent-encoded, a percent escape that is not two hex digits,
  a text value that is not UTF-8 (2.3: values are UTF-8, ``id`` is bytes);
- a repeated attribute (2.3: path attributes MUST NOT repeat; the standard query
  attributes are single-valued);
- an attribute this CA does not know. RFC 7512 2.3 lets any other name
  (letters, digits, ``-``, ``_``) be a vendor-specific attribute, without the ``x-``
  prefix early drafts asked for (section 3's own example is ``vendor-aaa``), so a
  misspelled ``objet=`` is syntactically a vendor attribute. 2.5 has an
  unrecognised path attribute match no resource at all: refusing it here says so at
  start-up instead of as "no such key" later; a vendor query attribute is refused
  alike, so that a misspelled ``pin-sorce`` is not silently ignored;
- ``type`` other than ``private``: the URI names the key the CA signs with;
- ``pin-source`` and ``pin-value`` together (2.4), a ``pin-source`` that is neither a
  ``file:`` URI nor an absolute path (2.4 lets a consumer interpret it; this one reads
  a file and never runs a command), a NUL byte in either path, a relative
  ``module-path``, and ``module-name``
  (a library found by name is platform magic: give its path).
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from acme_ca.errors import PkiError

SCHEME = "pkcs11:"

# RFC 7512 2.3, the ABNF's character sets (pct-encoded aside)
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_RES_AVAIL = ":[]@!$'()*+,="
_PATH_CHARS = frozenset(_UNRESERVED + _RES_AVAIL + "&")
_QUERY_CHARS = frozenset(_UNRESERVED + _RES_AVAIL + "/?|")
_HEX = frozenset("0123456789abcdefABCDEF")
_VENDOR_NAME = re.compile(r"[A-Za-z0-9_-]+")  # pk11-v-attr-nm-char

# RFC 7512 2.3: the path attributes (text unless noted) and the query attributes
PATH_ATTRIBUTES = (
    "token", "manufacturer", "serial", "model", "library-manufacturer",
    "library-description", "library-version", "slot-description", "slot-manufacturer",
    "slot-id", "object", "id", "type",
)
QUERY_ATTRIBUTES = ("pin-source", "pin-value", "module-name", "module-path")
_OBJECT_TYPES = ("public", "private", "cert", "secret-key", "data")
_LIBRARY_VERSION = re.compile(r"[0-9]+(\.[0-9]+)?")
PIN_FILE_LIMIT = 4096  # bytes: a PIN file larger than this is not a PIN file


def is_pkcs11_uri(value: str) -> bool:
    """Whether a configuration value names a key on a token rather than a file."""
    return value[:len(SCHEME)].lower() == SCHEME  # RFC 3986 3.1: any case


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """One parsed URI. ``attributes``: the path's other attributes (``type``,
    ``serial``, ``manufacturer``, ``model``, ``slot-id``, ...), percent-decoded, in
    the order given (``id`` is bytes, in ``object_id``); ``text``: the URI as given."""

    token: str | None = None
    object: str | None = None  # CKA_LABEL of the key
    object_id: bytes | None = None  # CKA_ID
    attributes: tuple[tuple[str, str], ...] = ()  # the other path attributes, decoded
    pin_source: Path | None = None
    pin_value: str | None = field(default=None, repr=False)
    module_path: Path | None = None
    text: str = field(default="", repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """The URI in ``text``; ValueError with a one-line reason (the config layer
        prefixes the key's name)."""
        if not is_pkcs11_uri(text):
            raise ValueError(f"a PKCS#11 URI starts with {SCHEME!r} (RFC 7512 2.3)")
        path_text, _, query_text = text[len(SCHEME):].partition("?")
        path = _attributes(path_text, ";", _PATH_CHARS, PATH_ATTRIBUTES, "path")
        query = _attributes(query_text, "&", _QUERY_CHARS, QUERY_ATTRIBUTES, "query")

        values: dict[str, str] = {}
        object_id: bytes | None = None
        for name, raw in path.items():
            if name == "id":
                object_id = _decode(raw, name)
            else:
                values[name] = _text(raw, name)
        _check_path_values(values)
        query_values = {name: _text(raw, name) for name, raw in query.items()}
        if "pin-source" in query_values and "pin-value" in query_values:
            raise ValueError("give pin-source or pin-value, not both (RFC 7512 2.4)")
        if "module-name" in query_values:
            raise ValueError("module-name is not supported: name the library by "
                             "module-path or [ca] pkcs11_module")
        for name in ("pin-source", "module-path"):
            if "\0" in query_values.get(name, ""):
                raise ValueError(f"{name} has a NUL byte, which no file name has")
        module_path = None
        if "module-path" in query_values:
            module_path = Path(query_values["module-path"])
            if not module_path.is_absolute():
                raise ValueError(f"module-path {module_path} is not an absolute path")
        pin_source = (_pin_source(query_values["pin-source"])
                      if "pin-source" in query_values else None)
        return cls(
            token=values.pop("token", None),
            object=values.pop("object", None),
            object_id=object_id,
            attributes=tuple(values.items()),
            pin_source=pin_source,
            pin_value=query_values.get("pin-value"),
            module_path=module_path,
            text=text,
        )

    def attribute(self, name: str) -> str | None:
        """A path attribute of ``attributes`` (``serial``, ``type``, ...), or None."""
        return dict(self.attributes).get(name)

    def pin(self) -> str | None:
        """The PIN: read from ``pin_source`` (one trailing newline dropped), or
        ``pin_value``; None when the URI names neither (a token without login).
        PkiError naming the file when it cannot be read, is not a regular file (a FIFO
        would block the reader, a device never end) or is over ``PIN_FILE_LIMIT``."""
        if self.pin_source is None:
            return self.pin_value
        try:
            fd = os.open(self.pin_source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as pin_file:
                if not stat.S_ISREG(os.fstat(pin_file.fileno()).st_mode):
                    raise PkiError(f"the PIN file {self.pin_source} of {self} is not a "
                                   "regular file")
                data = pin_file.read(PIN_FILE_LIMIT + 1)
            if len(data) > PIN_FILE_LIMIT:
                raise PkiError(f"the PIN file {self.pin_source} of {self} is larger than "
                               f"{PIN_FILE_LIMIT} bytes: not a PIN")
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PkiError(f"cannot read the PIN file {self.pin_source} of {self}: "
                           f"{reason}") from None
        return text.removesuffix("\n").removesuffix("\r")

    def with_attribute(self, name: str, value: str) -> Pkcs11Uri:
        """This URI with the path attribute ``name`` (``serial``, ...) set to ``value``:
        how a URI that several tokens match is narrowed to one."""
        kept = tuple((n, v) for n, v in self.attributes if n != name)
        narrowed = dataclasses.replace(self, attributes=(*kept, (name, value)), text="")
        return dataclasses.replace(narrowed, text=str(narrowed))

    def with_id(self, object_id: bytes) -> Pkcs11Uri:
        """This URI pinned to one object (its CKA_ID): how an archived intermediate's key
        is named once a newer key carries the same label."""
        pinned = dataclasses.replace(self, object_id=object_id, text="")
        return dataclasses.replace(pinned, text=str(pinned))

    def __str__(self) -> str:
        """The URI without any pin-value (safe in messages and logs)."""
        path = []
        if self.token is not None:
            path.append("token=" + _encode(self.token.encode(), _PATH_CHARS))
        path += [f"{name}={_encode(value.encode(), _PATH_CHARS)}"
                 for name, value in self.attributes]
        if self.object is not None:
            path.append("object=" + _encode(self.object.encode(), _PATH_CHARS))
        if self.object_id is not None:
            path.append("id=" + "".join(f"%{byte:02X}" for byte in self.object_id))
        query = []
        if self.pin_source is not None:
            query.append("pin-source=file:" + _encode(str(self.pin_source).encode(),
                                                       _QUERY_CHARS))
        if self.module_path is not None:
            query.append("module-path=" + _encode(str(self.module_path).encode(),
                                                  _QUERY_CHARS))
        return SCHEME + ";".join(path) + ("?" + "&".join(query) if query else "")


def _attributes(text: str, delimiter: str, allowed: frozenset[str],
                known: tuple[str, ...], component: str) -> dict[str, str]:
    """The ``name=value`` runs of one component, values still percent-encoded."""
    found: dict[str, str] = {}
    if not text:
        return found
    for run in text.split(delimiter):
        name, equals, value = run.partition("=")
        if not run:
            raise ValueError(f"an empty attribute between two {delimiter!r} in the "
                             f"{component} (RFC 7512 2.3)")
        if not equals:
            raise ValueError(f"{run!r} in the {component} is not name=value (RFC 7512 2.3)")
        if not name:
            raise ValueError(f"an attribute with an empty name in the {component} "
                             "(RFC 7512 2.3)")
        name = name.lower()  # ABNF literals are case-insensitive (RFC 5234 2.3)
        if name not in known:
            if name in PATH_ATTRIBUTES or name in QUERY_ATTRIBUTES:
                other = "query" if component == "path" else "path"
                raise ValueError(f"{name} belongs in the {other}, not the {component} "
                                 "(RFC 7512 2.3)")
            if not _VENDOR_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an attribute name (RFC 7512 2.3)")
            raise ValueError(
                f"unknown attribute {name!r} in the {component}: RFC 7512 2.5 has a URI "
                "with an attribute its reader does not know match no key")
        if name in found:
            raise ValueError(f"the attribute {name} is repeated (RFC 7512 2.3)")
        for char in value:
            if char not in allowed and char != "%":
                shown = "a character" if name == "pin-value" else repr(char)
                raise ValueError(f"the {name} value has {shown}, which the {component} "
                                 "admits only percent-encoded (RFC 7512 2.3)")
        found[name] = value
    return found


def _decode(value: str, name: str) -> bytes:
    """Percent-decoding (RFC 3986 2.1), strict: a ``%`` is followed by two hex digits."""
    out = bytearray()
    at = 0
    while at < len(value):
        if value[at] == "%":
            escape = value[at + 1:at + 3]
            if len(escape) != 2 or not set(escape) <= _HEX:
                shown = "" if name == "pin-value" else f" {value[at:at + 3]!r}"
                raise ValueError(f"the {name} value has a bad percent escape{shown} "
                                 "(RFC 7512 2.3)")
            out.append(int(escape, 16))
            at += 3
        else:
            out += value[at].encode()
            at += 1
    return bytes(out)


def _text(value: str, name: str) -> str:
    try:
        return _decode(value, name).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"the {name} value is not UTF-8 once percent-decoded "
                         "(RFC 7512 2.3)") from None


def _encode(data: bytes, allowed: frozenset[str]) -> str:
    return "".join(chr(byte) if chr(byte) in allowed and byte < 0x80 else f"%{byte:02X}"
                   for byte in data)


def _check_path_values(values: dict[str, str]) -> None:
    kind = values.get("type")
    if kind is not None and kind not in _OBJECT_TYPES:
        raise ValueError(f"type={kind} is not one of {', '.join(_OBJECT_TYPES)} "
                         "(RFC 7512 2.3)")
    if kind is not None and kind != "private":
        raise ValueError(f"type={kind}: the URI names the private key the CA signs with "
                         "(type=private, or no type)")
    slot = values.get("slot-id")
    if slot is not None and not (slot.isascii() and slot.isdigit()):
        raise ValueError(f"slot-id={slot} is not a decimal number (RFC 7512 2.3)")
    version = values.get("library-version")
    if version is not None and not _LIBRARY_VERSION.fullmatch(version):
        raise ValueError(f"library-version={version} is not major[.minor] (RFC 7512 2.3)")


def _pin_source(value: str) -> Path:
    """A ``file:`` URI (RFC 8089: ``file:/p``, ``file:///p``, ``file://localhost/p``) or
    a plain absolute path; RFC 7512 2.4 leaves the rest to the implementation, and this
    one never runs a ``|command``."""
    location = value
    if value.startswith("file:"):
        location = value[len("file:"):]
        if location.startswith("//"):
            host, slash, rest = location[2:].partition("/")
            if host not in ("", "localhost") or not slash:
                raise ValueError(f"pin-source {value} is not a local file: URI")
            location = "/" + rest
    elif value.startswith("|"):
        raise ValueError("pin-source |command is not supported: name a file")
    path = Path(location)
    if not path.is_absolute():
        raise ValueError(f"pin-source {value} is neither a file: URI nor an absolute path "
                         "(RFC 7512 2.4)")
    return path
