"""The JWS pipeline against hostile bytes a black-box fuzz sent (issue 9, item 14).

Every member of a flattened JWS is text a client chose. Whatever that text is, the
answer is an AcmeProblem, never another exception (which the front end turns into a
500). The property-based version of this file is tests/fuzz/test_fuzz_jws.py.
"""

from __future__ import annotations

import pytest

from acme_ca.api.jwk import parse_jwk
from acme_ca.domain.problems import AcmeProblem, ProblemType
from tests.api.jws_helpers import PRIVATE_KEYS, FakeServer, is_problem, make_jws, public_jwk

KID = "https://ca.example:8555/acme/acct/a1"


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


@pytest.mark.parametrize("member", ["kid", "url", "nonce", "x-anything"])
@pytest.mark.parametrize("text", ["\ud800", "\udfff", "a\udc00b"])
async def test_a_lone_surrogate_in_the_protected_header_is_malformed(
        server: FakeServer, member: str, text: str) -> None:
    """RFC 8259 8.1-8.2 and RFC 7515 5.2: the header is UTF-8 JSON, and a lone surrogate
    (which JSON can only carry as a "\\ud800" escape) is no Unicode text. Malformed, before
    any account lookup and before the nonce is spent; it reached Links.quote() as a kid."""
    private = PRIVATE_KEYS["ES256"]
    jws = make_jws(private, "ES256", kid=KID, extra={member: text})
    problem = await server.problem(jws)
    assert is_problem(problem, ProblemType.MALFORMED), problem
    assert "surrogate" in problem.detail
    assert server.kid_lookups == [] and server.nonces == {"nonce-1", "nonce-2"}


@pytest.mark.parametrize("payload", [b'{"contact": ["mailto:\\ud800@x.example"]}',
                                     b'{"\\udfff": 1}', b'{"a": [[{"b": "\\ud800"}]]}'])
async def test_a_lone_surrogate_in_the_payload_is_malformed(server: FakeServer,
                                                            payload: bytes) -> None:
    """RFC 8259 8.2: the payload, too, is Unicode text; a lone surrogate anywhere in it
    (member name, value, nested) is malformed when the payload is read."""
    private = PRIVATE_KEYS["ES256"]
    server.accounts[KID] = parse_jwk(public_jwk(private))
    request = await server.verify(make_jws(private, "ES256", kid=KID, payload=payload))
    with pytest.raises(AcmeProblem) as info:
        request.json()
    assert is_problem(info.value, ProblemType.MALFORMED) and "surrogate" in info.value.detail


async def test_a_surrogate_pair_is_one_character_and_accepted(server: FakeServer) -> None:
    """RFC 8259 7: a character outside the BMP is escaped as a surrogate pair; that pair
    is one valid character, not a lone surrogate."""
    private = PRIVATE_KEYS["ES256"]
    server.accounts[KID] = parse_jwk(public_jwk(private))
    jws = make_jws(private, "ES256", kid=KID, payload=b'{"k": "\\ud83d\\udd12"}',
                   extra={"x-note": "\U0001f512"})
    assert (await server.verify(jws)).json() == {"k": "\U0001f512"}
