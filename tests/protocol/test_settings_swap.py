"""A configuration swapped in at run time (SIGHUP, issue 13 item 7: ``authority/settings``)
reaches the next requests: [policy] validity, [acme] meta, [profiles.*], [limits];
a request in flight keeps the services it started with."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from acme_ca.api.context import SERVICES
from acme_ca.config import Config, load_config
from tests.acme_client import BASE
from tests.protocol.conftest import AcmeServer
from tests.protocol.helpers import issue, leaf_of, registered


def changed(server: AcmeServer, toml: str = "", **overrides: Any) -> Config:
    """The server's configuration as a file with ``toml`` would load, ``overrides`` too."""
    path = server.config.server.data_dir.parent / "changed.toml"
    path.write_text(toml)
    config = load_config(path, {"server.external_url": BASE,
                                "server.data_dir": str(server.config.server.data_dir),
                                "storage.url": server.config.storage.url, **overrides})
    return replace(config, ca=server.config.ca)


def lifetime(pem: bytes) -> timedelta:
    leaf = leaf_of(pem)
    return leaf.not_valid_after_utc - leaf.not_valid_before_utc


async def test_a_new_default_validity_applies_to_the_next_certificate(server: AcmeServer):
    client = await registered(server)
    _, before = await issue(server, client, "a.bluerobin.local")
    assert lifetime(before) == server.config.policy.default_validity == timedelta(days=7)
    server.settings.swap(changed(server, **{"policy.default_validity": "2d"}))
    _, after = await issue(server, client, "b.bluerobin.local")
    assert lifetime(after) == timedelta(days=2)


async def test_directory_meta_and_profiles_follow_the_swap(server: AcmeServer):
    meta = (await server.client().directory())["meta"]
    assert "website" not in meta
    server.settings.swap(changed(server, """
        [acme]
        website = "https://ca.bluerobin.local/"
        [profiles.short]
        description = "one day"
        extended_key_usages = ["serverAuth"]
        default_validity = "1d"
        """))
    meta = (await server.client().directory())["meta"]
    assert meta["website"] == "https://ca.bluerobin.local/"
    assert meta["profiles"]["short"] == "one day"


async def test_a_request_keeps_the_services_it_started_with(server: AcmeServer):
    """One holder swapped whole: the services read before a swap stay whole (the old
    ones are not patched), and what follows the swap sees new ones."""
    old = server.app[SERVICES]()
    server.settings.swap(changed(server, **{"acme.website": "https://x.bluerobin.local/"}))
    new = server.app[SERVICES]()
    assert new is not old
    assert old.meta.website is None and new.meta.website == "https://x.bluerobin.local/"
    assert new.nonces is old.nonces  # what keeps state is shared, not rebuilt
