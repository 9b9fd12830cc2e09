"""What the fuzz tests share: the settings profile, and strategies for hostile input.

The number of examples per test is small by default, so that CI stays fast; set
ACME_CA_FUZZ_EXAMPLES to scale every test (``ACME_CA_FUZZ_EXAMPLES=20000 pytest
tests/fuzz``). A test may weigh its share (``fuzz(0.2)``: slow targets, such as whole
HTTP requests, get a fifth of the examples). docs/security.md, "Hostile bodies:
fuzzing", has the figures of the long run and its command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DEFAULT_EXAMPLES = 60
EXAMPLES = int(os.environ.get("ACME_CA_FUZZ_EXAMPLES") or DEFAULT_EXAMPLES)

settings.register_profile(
    "acme-ca-fuzz",
    max_examples=EXAMPLES,
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


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, inserted, deleted or a slice repeated:
    inputs that get deep into a parser before they go wrong."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.integers(0, 4))
        if action == 0 and data:
            data[where] ^= 1 << draw(st.integers(0, 7))
        elif action == 1 and data:
            data[where] = draw(st.integers(0, 255))
        elif action == 2:
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
        elif action == 3 and data:
            del data[where:where + draw(st.integers(1, 8))]
        else:
            end = draw(st.integers(where, min(len(data), where + 16)))
            data[where:where] = data[where:end]
    return bytes(data)


def only_raises(call: Callable[[], Any], *allowed: type[BaseException]) -> Any:
    """Call; return its value or None if it raised one of ``allowed``. Any other
    exception propagates, and hypothesis reports it with the input that caused it."""
    try:
        return call()
    except allowed:
        return None
