"""Where validation may connect (RFC 8555 10.2 "Request forgery").

Loopback is allowed by default only when the server itself listens on loopback and
is not behind a reverse proxy ([server] external_url unset), and no validation
connection (first request or redirect) ever reaches a port the CA itself listens on,
nor the port of its external_url (on this host, or where that URL's host resolves).
"""

from __future__ import annotations

import ipaddress

import pytest
from aiohttp import web

from acme_ca.cli.wiring import default_validators, own_endpoints, own_ports
from acme_ca.config import Config, load_config
from acme_ca.domain.problems import ProblemType
from acme_ca.validation.network import AddressPolicy, OwnEndpoints
from tests.validation.conftest import StartDns
from tests.validation.http01_helpers import (
    IDENT,
    KEY_AUTH,
    NAME,
    PATH,
    TOKEN,
    Serve,
    check,
    redirect,
    validator,
)

URL = f"http://{NAME}:{{port}}{PATH}"

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


PROXIED = "https://ca.bluerobin.local"  # served through a reverse proxy


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
        ((None, PROXIED), False),  # a proxy on this host reaches the CA over loopback
        (("127.0.0.1:8555", PROXIED), False),
        (("localhost:8555", PROXIED), False),
    ],
)
def test_loopback_is_allowed_by_default_only_when_the_server_listens_there(
    listen: str | tuple[str | None, str] | None, loopback_allowed: bool
):
    """Without [validation] allowed_networks, the private ranges are allowed, and
    loopback only when [server] listen is a loopback address and no external_url says
    that a reverse proxy serves the CA: a CA that serves the network must not let
    validation reach the services of its own host (the proxy on 443, which forwards to
    the CA, and whatever else listens on loopback)."""
    listen, external_url = listen if isinstance(listen, tuple) else (listen, None)
    config = load_config(None, {"server.listen": listen, "server.external_url": external_url})
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


@pytest.mark.parametrize("proxied", [False, True], ids=["listen", "external_url"])
@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
async def test_validation_never_connects_to_the_port_serve_listens_on(
    own_port: tuple[int, list[str]], challenge: str, proxied: bool
):
    """The validators learn the CA's own endpoints from [server] listen and external_url
    (cli wiring): a name resolving to the CA's host, on the CA's port or the port of
    the proxy in front of it, is refused before connecting, for the first request too
    (no challenge is ever answered by the CA itself). Loopback is allowed here, so that
    the own-endpoint rule alone refuses."""
    ca_port, hits = own_port
    server = {"server.listen": f"127.0.0.1:{ca_port}"}
    if proxied:  # the stand-in is the proxy; the CA itself listens elsewhere
        server = {"server.listen": "127.0.0.1:8555",
                  "server.external_url": f"https://ca.bluerobin.local:{ca_port}/acme"}
    config = load_config(None, {
        **server, "validation.hosts": {NAME: "127.0.0.1"},
        "validation.allowed_networks": ["127.0.0.0/8"],
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



def test_behind_a_proxy_loopback_and_the_proxy_port_are_refused():
    """The reverse-proxy deployment ([server] listen 127.0.0.1:8555, external_url
    https://ca.bluerobin.local): a redirect to https://127.0.0.1/ would reach the proxy
    and through it the CA, and http://127.0.0.1/ any loopback service: all refused by
    default, and 443 is the CA's own port on this host whatever allowed_networks says."""
    config = load_config(None, {"server.listen": "127.0.0.1:8555", "server.external_url": PROXIED})
    policy = AddressPolicy(config.validation.allowed_networks, own=own_endpoints_now(config))
    local = ipaddress.ip_address
    for address, port in [("127.0.0.1", 443), ("127.0.0.1", 80), ("::1", 443),
                          ("127.0.0.1", 8555)]:
        assert policy.refused(local(address), port) is not None, (address, port)
    assert policy.own.covers(local("127.0.0.1"), 443)
    assert policy.own.covers(local("127.0.0.1"), 8555)
    assert not policy.own.covers(local("127.0.0.1"), 80)


def own_endpoints_now(config: Config) -> OwnEndpoints:
    """What the wiring knows without resolving: the ports of listen and external_url."""
    return OwnEndpoints(own_ports(config))


@pytest.mark.parametrize(
    ("external_url", "port"),
    [("https://ca.bluerobin.local", 443), ("https://ca.bluerobin.local:8443/acme", 8443),
     ("https://192.0.2.7:9443", 9443)],
)
async def test_the_address_of_external_url_is_the_cas_own(external_url: str, port: int):
    """A proxy on another host is the CA too: the addresses external_url's host resolves
    to at start (through validation's own resolver: here the hosts table) are the CA's,
    on the CA's ports; the other ports of that host are still validated."""
    config = load_config(None, {
        "server.listen": "10.0.0.1:8555", "server.external_url": external_url,
        "validation.hosts": {"ca.bluerobin.local": "192.0.2.7"},
    })
    own = await own_endpoints(config)
    proxy = ipaddress.ip_address("192.0.2.7")  # TEST-NET-1: never this host's
    assert own.ports == {8555, port}
    assert own.covers(proxy, port)
    assert own.covers(proxy, 8555)
    assert not own.covers(proxy, 80)


async def test_an_external_url_that_does_not_resolve_leaves_its_port(
    fake_dns: StartDns, caplog: pytest.LogCaptureFixture
):
    """"If it resolves": a name no resolver knows at start adds no address (a warning
    says so), and its port still counts on this host."""
    _, address = await fake_dns()  # NXDOMAIN for every name
    config = load_config(None, {
        "server.external_url": "https://gone.bluerobin.local:8443",
        "validation.resolvers": [address],
    })
    own = await own_endpoints(config)
    assert own.ports == {8555, 8443}
    assert own.addresses == frozenset()
    assert own.covers(ipaddress.ip_address("127.0.0.1"), 8443)
    assert "gone.bluerobin.local" in caplog.text
