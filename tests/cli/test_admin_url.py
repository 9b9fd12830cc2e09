"""The admin listener's URL as `serve` prints it (issue 13 item 2: "startup prints the
admin URL"): a name the server's TLS certificate carries, since the listener presents
that certificate, with the admin port."""

from __future__ import annotations

import pytest

from acme_ca.cli.wiring import admin_url
from acme_ca.config import load_config


@pytest.mark.parametrize(("listen", "hostname", "admin", "url"), [
    ("127.0.0.1:8555", "localhost", "127.0.0.1:8557", "https://127.0.0.1:8557"),
    ("0.0.0.0:8555", "ca.bluerobin.local", "0.0.0.0:8557", "https://ca.bluerobin.local:8557"),
    ("0.0.0.0:8555", "localhost", "127.0.0.1:8557", "https://127.0.0.1:8557"),
    ("[::1]:8555", "localhost", "[::1]:8557", "https://[::1]:8557"),
    ("10.0.0.5:8555", "ca.bluerobin.local", "127.0.0.1:8557",
     "https://ca.bluerobin.local:8557"),  # 127.0.0.1 is not in the certificate
])
def test_the_admin_url_names_what_the_certificate_carries(
        listen: str, hostname: str, admin: str, url: str) -> None:
    config = load_config(None, {"server.listen": listen, "server.hostname": hostname,
                                "admin.listen": admin})
    assert admin_url(config) == url
