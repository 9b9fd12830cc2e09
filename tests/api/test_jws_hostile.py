"""The JWS pipeline against hostile bytes a black-box fuzz sent (issue 9, item 14).

Every member of a flattened JWS is text a client chose. Whatever that text is, the
answer is an AcmeProblem, never another exception (which the front end turns into a
500). The property-based version of this file is tests/fuzz/test_fuzz_jws.py.
"""

from __future__ import annotations

import pytest

from acme_ca.domain.problems import ProblemType
from tests.api.jws_helpers import PRIVATE_KEYS, FakeServer, is_problem, make_jws


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
@pytest.mark.parametrize("text", ["é", "\u2028", "\U0001f512", "\ud800"])
async def test_non_ascii_in_a_member_is_malformed(server: FakeServer, member: str,
                                                  text: str) -> None:
    """RFC 7515 2 and 7.2.1: the members are base64url, an ASCII alphabet; any other
    character is malformed (it was a UnicodeEncodeError, so a 500, in the payload)."""
    jws = make_jws(PRIVATE_KEYS["ES256"], "ES256")
    value = jws[member]
    problem = await server.problem({**jws, member: value[:4] + text + value[4:]})
    assert is_problem(problem, ProblemType.MALFORMED)
    assert server.nonces == {"nonce-1", "nonce-2"}  # refused before the nonce is spent
