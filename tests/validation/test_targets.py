"""Where validation may connect (RFC 8555 10.2 "Request forgery").

Loopback is allowed by default only when the server itself listens on loopback, and
no validation connection (first request or redirect) ever reaches a port the CA
itself listens on.
"""
# ruff: noqa: F811  (the fixtures imported from test_http01 are parameters here)

from __future__ import annotations

import ipaddress

import pytest
from aiohttp import web

from acme_ca.cli.wiring import default_validators
from acme_ca.config import load_config
from acme_ca.domain.problems import ProblemType
from acme_ca.validation.network import AddressPolicy, OwnEndpoints
from tests.validation.test_http01 import (  # noqa: F401 (fixtures)
    IDENT,
    KEY_AUTH,
    NAME,
    PATH,
    TOKEN,
    Serve,
    check,
    redirect,
    serve,
    validator,
)

URL = f"http://{NAME}:{{port}}{PATH}"

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(
    ("listen", "loopback_allowed"),
    [
        (None, True),  # the default, 127.0.0.1:8555 (the Quick start)
        ("127.0.0.1:8555", True),
        ("127.0.0.2:9000", True),
        ("[::1]:8555", True),
        ("localhost:8555", True),
        ("10.0.0.1:8555", False),
        ("0.0.0.0:8555", False),
        ("[::]:8555", False),
        ("ca.bluerobin.local:8555", False),
    ],
)
def test_loopback_is_allowed_by_default_only_when_the_server_listens_there(
    listen: str | None, loopback_allowed: bool
):
    """Without [validation] allowed_networks, the private ranges are allowed, and
    loopback only when [server] listen is a loopback address: a CA that serves the
    network must not let validation reach the services of its own host."""
    config = load_config(None, {"server.listen": listen})
    allowed = config.validation.allowed_networks
    assert ipaddress.ip_network("10.0.0.0/8") in allowed
    assert ipaddress.ip_network("fc00::/7") in allowed
    assert all((network in allowed) is loopback_allowed for network in LOOPBACK)


def test_an_explicit_allowed_networks_wins_over_the_listen_address():
    config = load_config(
        None, {"server.listen": "10.0.0.1:8555", "validation.allowed_networks": ["127.0.0.0/8"]}
    )
    assert config.validation.allowed_networks == (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.mark.parametrize(("listen", "connected"), [(None, 1), ("10.0.0.1:8555", 0)])
async def test_a_server_on_the_network_refuses_loopback_targets(
    serve: Serve, listen: str | None, connected: int
):
    """The default configuration reaches http-01: a name resolving to 127.0.0.1 is
    validated under the default listen, refused unconnected when listening on 10.0.0.1."""
    requests: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(text=KEY_AUTH)

    port = await serve({PATH: answer})
    config = load_config(None, {
        "server.listen": listen, "validation.hosts": {NAME: "127.0.0.1"},
        "validation.http01_port": port,
    })
    result = await check(default_validators(config)["http-01"])
    assert len(requests) == connected
    if connected:
        assert result.valid, result.problem
    else:
        assert result.problem is not None
        assert result.problem.detail == (
            f"{NAME} resolves to an address that is outside [validation] allowed_networks: "
            "validation never connects there"
        )


@pytest.fixture
async def own_port(serve: Serve) -> tuple[int, list[str]]:
    """A stand-in for the CA's own listener (it even answers the key authorization)."""
    hits: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text=KEY_AUTH)

    return await serve({"/{tail:.*}": answer}), hits


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost.bluerobin.local"])
async def test_a_redirect_to_the_cas_own_port_is_refused_even_with_loopback_allowed(
    serve: Serve, own_port: tuple[int, list[str]], host: str
):
    """No redirect reaches a port the CA listens on, on any address of its host: loopback
    is allowed here (the Quick start), the port is one redirects may use, and still the
    CA's own listener sees no request."""
    ca_port, hits = own_port
    port = await serve({PATH: redirect(f"http://{host}:{ca_port}/acme/directory")})
    policy = AddressPolicy(own=OwnEndpoints(frozenset({ca_port})))
    hosts = {NAME: "127.0.0.1", "localhost.bluerobin.local": "127.0.0.1"}
    result = await check(validator(port, hosts, policy=policy, http_redirect_port=ca_port))
    assert hits == []
    assert result.problem is not None
    assert result.problem.type is ProblemType.CONNECTION
    assert result.problem.detail == (
        f"redirect 1 from {URL.format(port=port)} goes to an address that is this CA's own "
        "listening address and port: validation never connects there"
    )


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
async def test_validation_never_connects_to_the_port_serve_listens_on(
    own_port: tuple[int, list[str]], challenge: str
):
    """The validators learn the CA's own endpoint from [server] listen (cli wiring): a
    name resolving to the CA's host, on the CA's port, is refused before connecting,
    for the first request too (no challenge is ever answered by the CA itself)."""
    ca_port, hits = own_port
    config = load_config(None, {
        "server.listen": f"127.0.0.1:{ca_port}", "validation.hosts": {NAME: "127.0.0.1"},
        "validation.http01_port": ca_port, "validation.tlsalpn01_port": ca_port,
    })
    result = await default_validators(config)[challenge].validate(IDENT, TOKEN, KEY_AUTH)
    assert hits == []
    assert result.problem is not None
    assert result.problem.detail == (
        f"{NAME} resolves to an address that is this CA's own listening address and "
        "port: validation never connects there"
    )


def test_own_endpoints_cover_every_address_of_this_host():
    """The CA's addresses: loopback, the unspecified address, and any address this host
    can bind (its interfaces), on the CA's ports only."""
    own = OwnEndpoints(frozenset({8555}))
    local = ipaddress.ip_address
    assert own.covers(local("127.0.0.1"), 8555)
    assert own.covers(local("127.9.9.9"), 8555)
    assert own.covers(local("::ffff:127.0.0.1"), 8555)
    assert not own.covers(local("127.0.0.1"), 80)
    assert not own.covers(local("192.0.2.1"), 8555)  # TEST-NET-1: never this host's
