"""Resource URLs (acme_ca/api/links.py): one table, one base URL, never the Host header."""

from __future__ import annotations

import re

import pytest

from acme_ca.api.links import ROUTES, Links

BASE = "https://ca.example:8555"


def test_every_resource_url() -> None:
    """RFC 8555 7.1: the directory and every resource have a URL under the base."""
    links = Links(BASE)
    assert links.directory() == f"{BASE}/directory"
    assert links.new_nonce() == f"{BASE}/acme/new-nonce"
    assert links.new_account() == f"{BASE}/acme/new-account"
    assert links.new_order() == f"{BASE}/acme/new-order"
    assert links.revoke_cert() == f"{BASE}/acme/revoke-cert"
    assert links.key_change() == f"{BASE}/acme/key-change"
    assert links.account("a1") == f"{BASE}/acme/acct/a1"
    assert links.account_orders("a1") == f"{BASE}/acme/acct/a1/orders"
    assert links.order("o1") == f"{BASE}/acme/order/o1"
    assert links.finalize("o1") == f"{BASE}/acme/order/o1/finalize"
    assert links.authorization("z1") == f"{BASE}/acme/authz/z1"
    assert links.challenge("c1") == f"{BASE}/acme/chall/c1"
    assert links.certificate("1f2e") == f"{BASE}/acme/cert/1f2e"
    assert links.root() == f"{BASE}/roots/root.pem"
    assert links.chain() == f"{BASE}/roots/chain.pem"


def test_routes_table_matches_the_urls() -> None:
    """One table: each route pattern, filled in, is the path Links builds."""
    links = Links(BASE)
    for name, pattern in ROUTES.items():
        method = getattr(links, name)
        args = re.findall(r"\{(\w+)\}", pattern)
        url = method(*["v" for _ in args])
        assert url == BASE + re.sub(r"\{\w+\}", "v", pattern), name
    assert ROUTES["account"] == "/acme/acct/{id}"
    with pytest.raises(TypeError):
        ROUTES["account"] = "/elsewhere"  # type: ignore[index]


@pytest.mark.parametrize("base", [BASE + "/", BASE + "//"])
def test_trailing_slash_is_dropped(base: str) -> None:
    assert Links(base).directory() == f"{BASE}/directory"


def test_path_prefix_is_prepended() -> None:
    """Behind a proxy that strips /acme-ca, URLs carry the prefix; routes stay at the root."""
    links = Links("https://proxy.example/acme-ca/")
    assert links.new_order() == "https://proxy.example/acme-ca/acme/new-order"
    assert links.request_url("/acme/new-order") == links.new_order()
    assert links.account_id_from_kid("https://proxy.example/acme-ca/acme/acct/a1") == "a1"
    assert links.account_id_from_kid("https://proxy.example/acme/acct/a1") is None


def test_request_url_is_base_plus_path_and_query() -> None:
    """RFC 8555 6.4: the JWS "url" is compared with base + raw path and query."""
    links = Links(BASE)
    assert links.request_url("/acme/order/o1") == links.order("o1")
    path_qs = "/acme/acct/a1/orders?cursor=2"
    assert links.request_url(path_qs) == f"{BASE}{path_qs}"


def test_ids_are_quoted_so_they_cannot_escape_their_segment() -> None:
    links = Links(BASE)
    assert links.order("a/b?c") == f"{BASE}/acme/order/a%2Fb%3Fc"


def test_account_id_from_kid_is_exact() -> None:
    """RFC 8555 6.2: "kid" is the account URL this server gave out, exactly."""
    links = Links(BASE)
    assert links.account_id_from_kid(links.account("a1")) == "a1"
    assert links.account_id_from_kid(links.account("a/1")) == "a/1"
    for kid in [
        f"{BASE}/acme/acct/",
        f"{BASE}/acme/acct/a1/orders",
        f"{BASE}/acme/acct/a1?x=1",
        f"{BASE}/acme/acct/a1/",
        f"{BASE}/acme/acct/%61%31",  # "a1" spelled another way
        f"{BASE}/acme/order/a1",
        "http://ca.example:8555/acme/acct/a1",
        "https://evil.example/acme/acct/a1",
        f"{BASE}.evil.example/acme/acct/a1",
        "a1",
        "",
    ]:
        assert links.account_id_from_kid(kid) is None, kid


@pytest.mark.parametrize(
    "base",
    [
        "ca.example:8555",
        "ftp://ca.example",
        "https://",
        "https://ca.example/?x=1",
        "https://ca.example/#f",
    ],
)
def test_bad_base_urls_are_refused(base: str) -> None:
    with pytest.raises(ValueError):
        Links(base)


@pytest.mark.parametrize("suffix", ["\ud800", "a1\udfff", "é", "a1/é", "%ED%A0%80", "\U0001f512",
                                    "a1%", "%zz"])
def test_a_kid_that_is_no_account_url_names_no_account(suffix: str) -> None:
    """RFC 8555 6.2: a kid is an account URL of this server, which Links builds in ASCII.
    Anything else after the account prefix, non-ASCII text and lone surrogates included,
    names no account (None), and never raises: it was a UnicodeEncodeError in quote(),
    a 500 before the signature was checked."""
    links = Links(BASE)
    assert links.account_id_from_kid(f"{BASE}/acme/acct/{suffix}") is None


@pytest.mark.parametrize("prefix", ["/acme{x}", "/{id}", "/a{{b}}", "/{0}", "/}{"])
def test_a_base_with_braces_is_prepended_as_it_is(prefix: str) -> None:
    """RFC 8555 7.1: resource URLs are the configured base followed by the route's
    path. ``[server] external_url`` may hold braces (``values.external_url`` lets any
    path through), which are text of the base, never fields of the route's template:
    not a KeyError on every URL (``{x}``), not an id in the base (``{id}``)."""
    base = "https://proxy.example" + prefix
    links = Links(base)
    assert links.order("o1") == base + "/acme/order/o1"
    assert links.certificate("1f", 2) == base + "/acme/cert/1f/2"
    assert links.directory() == base + "/directory"
    assert links.index_link == f"<{base}/directory>;rel=\"index\""
    assert links.account_id_from_kid(base + "/acme/acct/a1") == "a1"
