"""The URLs http-01 fetches, and how a problem names them (RFC 8555 8.3, 10.2).

The first URL is built here from the identifier and the token. Every later one is a
redirect's target, and so the target's choice (its Location header): a problem about
it names the challenge URL and the redirect's number ("the target of redirect 2 from
http://web.example/.well-known/acme-challenge/..."), never the URL, its host, its port
or the addresses its host resolves to; the challenge URL is named by its host, never by
the address it resolved to either. Otherwise validation would read, to whoever
registered an account, where an internal service sends its visitors (a login page
with its parameters, an internal host name). For the same reason a wrong body is
described (empty, wrong length, does not match), never shown.

Redirects are followed by hand (Boulder ``va/http.go``): http and https only, on the
ports followed only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from yarl import URL

from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import AcmeProblem, ProblemType
from acme_ca.validation.network import host_port, ip_literal

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHALLENGE_PATH = "/.well-known/acme-challenge/"
STANDARD_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")  # base64url, RFC 8555 8.1
_SHOWN = 64  # characters of the expected key authorization shown in a problem


@dataclass(frozen=True, slots=True)
class Hop:
    """One request: the challenge URL (``number`` 0) or the target of redirect ``number``."""

    number: int
    url: URL
    port: int
    first: URL  # the challenge URL, built here from the identifier and token

    @property
    def name(self) -> str:
        """How a problem names this request: never by a URL the target chose."""
        if self.number == 0:
            return str(self.url)
        return f"the target of redirect {self.number} from {self.first}"

    @property
    def where(self) -> str:
        """'web.example:80' for the challenge URL, else ``name``: never the address the
        host resolved to (DNS data, see network.py)."""
        if self.number == 0:
            return host_port(self.url.raw_host, self.port)
        return self.name

    @property
    def fetching(self) -> str:
        return f"fetching {self.url if self.number == 0 else self.name}"


def challenge_url(identifier: Identifier, token: str, port: int) -> URL:
    """The first URL; raises AcmeProblem for what http-01 cannot validate."""
    if identifier.type not in ("dns", "ip"):
        raise AcmeProblem(
            ProblemType.UNSUPPORTED_IDENTIFIER,
            f"http-01 cannot validate a {identifier.type!r} identifier",
        )
    if identifier.value.startswith("*."):
        raise AcmeProblem(
            ProblemType.MALFORMED, f"http-01 cannot validate the wildcard {identifier.value}"
        )
    if identifier.type == "ip" and ip_literal(identifier.value) is None:
        raise AcmeProblem(ProblemType.MALFORMED, f"{identifier.value!r} is not an IP address")
    if not _TOKEN.fullmatch(token):
        raise AcmeProblem(ProblemType.MALFORMED, "the challenge token is not base64url")
    try:
        return URL.build(
            scheme="http",
            host=identifier.value,
            port=None if port == 80 else port,
            path=CHALLENGE_PATH + token,
        )
    except ValueError:
        raise AcmeProblem(
            ProblemType.MALFORMED, f"{identifier.value!r} is not a valid host name"
        ) from None


def redirect_target(
    hop: Hop,
    status: int,
    location: str | None,
    default_ports: Mapping[str, int],
    followed_ports: Sequence[int],
) -> tuple[URL, int]:
    """The URL and port a redirect from ``hop`` leads to, after checking its scheme and
    port; ``default_ports`` maps each scheme followed to its port when none is given."""
    if not location:
        raise AcmeProblem(
            ProblemType.UNAUTHORIZED,
            f"fetching {hop.name} returned {status} without a Location header",
        )
    refused = f"redirect {hop.number + 1} from {hop.first} is not allowed"
    try:
        target = hop.url.join(URL(location)).with_fragment(None).with_user(None)
        explicit_port = target.explicit_port
    except (ValueError, TypeError, UnicodeError):
        raise AcmeProblem(ProblemType.CONNECTION, f"{refused}: not a valid URL") from None
    if target.scheme not in default_ports:
        raise AcmeProblem(
            ProblemType.CONNECTION, f"{refused}: only http and https URLs are followed"
        )
    if not target.raw_host:
        raise AcmeProblem(ProblemType.CONNECTION, f"{refused}: the URL has no host")
    port = default_ports[target.scheme] if explicit_port is None else explicit_port
    if port not in followed_ports:
        allowed = ", ".join(str(p) for p in followed_ports)
        raise AcmeProblem(
            ProblemType.CONNECTION,
            f"{refused}: its port is not one of the ports followed ({allowed})",
        )
    return target, port


def check_body(name: str, body: bytes, key_authorization: str) -> None:
    """RFC 8555 8.3: the body must be the key authorization; trailing whitespace is
    ignored. The problem says how it differs, never what it holds (RFC 8555 10.2)."""
    received = body.rstrip()  # ASCII whitespace only: space, \t, \n, \r, \v, \f
    expected = key_authorization.encode()
    if received == expected:
        return
    if not received:
        reason = "the body is empty"
    elif len(received) != len(expected):
        reason = "the body has the wrong length"
    else:
        reason = "the body does not match"
    raise AcmeProblem(
        ProblemType.INCORRECT_RESPONSE,
        f"the response from {name} is not the key authorization: {reason} "
        f"(it should be {_show(expected)})",
    )


def _show(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return repr(text[:_SHOWN]) + ("..." if len(text) > _SHOWN else "")
