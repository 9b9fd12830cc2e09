"""What the fuzz tests share: the settings profile, and strategies for hostile input.

The number of examples per test is small by default, so that CI stays fast, and the
default run is derandomized: CI, and anyone running ``pytest tests/fuzz``, tries the same
fixed set (the @example()s first, then the same generated ones). Set
ACME_CA_FUZZ_EXAMPLES to scale every test and draw random examples instead
(``ACME_CA_FUZZ_EXAMPLES=20000 pytest tests/fuzz``). A test may weigh its share
(``fuzz(0.2)``: slow targets, such as whole HTTP requests, get a fifth of the examples).
docs/security.md, "Hostile bodies: fuzzing", has the figures of the long run and its
command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DEFAULT_EXAMPLES = 60
SCALED = os.environ.get("ACME_CA_FUZZ_EXAMPLES")
EXAMPLES = int(SCALED or DEFAULT_EXAMPLES)

settings.register_profile(
    "acme-ca-fuzz",
    max_examples=EXAMPLES,
    derandomize=not SCALED,  # a fixed set by default (CI); random when scaled
    deadline=None,  # a shared 2-core machine: timing is not the property
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # one server per test, many requests to it
    ],
)


def fuzz(weight: float = 1.0) -> settings:
    """The fuzz profile with ``weight`` times the examples (at least 5)."""
    return settings(settings.get_profile("acme-ca-fuzz"),
                    max_examples=max(5, round(EXAMPLES * weight)))


# Any character, lone surrogates included: JSON can carry them ("\ud800"), and
# they break whatever encodes a str without care.
ANY_CHAR = st.characters(exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=40)
# Text a parser is likelier to half-accept: ASCII letters, digits, the base64url
# alphabet, separators, and a few non-ASCII characters seen to break code.
NEAR_TEXT = st.text(
    st.sampled_from("abcxyzAZ0129-_.:/*@=+ \t\n" + "é\u2028\u200b\ud800\x00\U0001f512"),
    max_size=40,
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | TEXT
    | NEAR_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT | NEAR_TEXT, inner,
                                                                 max_size=4),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    """JSON as a client would send it (lone surrogates as \\u escapes)."""
    return json.dumps(value, ensure_ascii=True).encode()


@st.composite
def mutated_object(draw: st.DrawFn, template: dict[str, Any]) -> Any:
    """A JSON object grown from a valid one: members replaced by any JSON value,
    removed, or added; sometimes not an object at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON)
    obj = dict(template)
    for name in list(template):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            obj[name] = draw(JSON)
        elif choice == 1:
            del obj[name]
    for name, value in draw(st.dictionaries(TEXT | NEAR_TEXT, JSON, max_size=2)).items():
        obj[name] = value
    return obj


# An edit of bytes: (action, where, argument). `where` is taken modulo the length, so an
# edit applies to any seed, and -1 is the last byte.
Edit = tuple[str, int, Any]
_WHERE = st.integers(-(2**16), 2**16)
EDITS = st.lists(
    st.tuples(st.just("flip"), _WHERE, st.integers(0, 7))  # one bit
    | st.tuples(st.just("set"), _WHERE, st.integers(0, 255))  # one byte
    | st.tuples(st.just("insert"), _WHERE, st.binary(min_size=1, max_size=4))
    | st.tuples(st.just("delete"), _WHERE, st.integers(1, 8))  # that many bytes
    | st.tuples(st.just("repeat"), _WHERE, st.integers(0, 16)),  # a slice, once more
    min_size=1, max_size=4,
).map(tuple)


def apply_edits(seed: bytes, edits: tuple[Edit, ...]) -> bytes:
    """``seed`` with ``edits`` (from EDITS) applied in turn."""
    data = bytearray(seed)
    for action, where, argument in edits:
        at = where % len(data) if data else 0
        if action == "flip" and data:
            data[at] ^= 1 << argument
        elif action == "set" and data:
            data[at] = argument
        elif action == "insert":
            data[at:at] = argument
        elif action == "delete":
            del data[at:at + argument]
        elif action == "repeat":
            data[at:at] = data[at:at + argument]
    return bytes(data)


def mutated_bytes(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with a few bytes flipped, inserted, deleted or a slice repeated:
    inputs that get deep into a parser before they go wrong."""
    return EDITS.map(lambda edits: apply_edits(seed, edits))


# Text that starts as a valid value does (an account URL, a request URL, a nonce) and
# goes on with something hostile: nothing, a path, percent-escapes of a lone surrogate,
# non-ASCII, a lone surrogate, any text, or a very long run (70,000 is over the body limit).
JUNK = (
    st.sampled_from(["", "/", "x", "/orders", "?a=b", "#f", " ", "%00", "%2e%2e",
                     "%ED%A0%80", "é", "\u2028", "\U0001f512", "\ud800", "\udfff"])
    | NEAR_TEXT
    | TEXT
    | st.sampled_from([200, 5_000, 70_000]).map(lambda n: "A" * n)
)


def after(*prefixes: str) -> st.SearchStrategy[str]:
    """One of ``prefixes``, then JUNK."""
    return st.tuples(st.sampled_from(prefixes), JUNK).map("".join)


def only_raises(call: Callable[[], Any], *allowed: type[BaseException]) -> Any:
    """Call; return its value or None if it raised one of ``allowed``. Any other
    exception propagates, and hypothesis reports it with the input that caused it."""
    try:
        return call()
    except allowed:
        return None
