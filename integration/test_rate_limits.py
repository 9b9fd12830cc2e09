"""A real client over a rate limit (RFC 8555 6.6): lego (the Debian package) gets its
certificate, then asks again for the same name within the week of a
``certificates_per_names = "1/7d"`` limit, and hears 429 rateLimited with our detail,
which names the limit and when it resets. The bucket lives in the server's database:
a restart of the server forgets nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from integration.clients import describe, expect_ok, serving_acme
from integration.test_lego import Lego

pytestmark = pytest.mark.integration

LIMITS = '\n[limits]\ncertificates_per_names = "1/7d"\n'


def test_lego_hears_rate_limited_with_the_limit_and_when_it_resets(tmp_path: Path) -> None:
    with serving_acme(tmp_path / "acme-ca", LIMITS) as acme:
        lego = Lego(acme, tmp_path / "lego")
        expect_ok(lego("run")[0], acme)
        refused, _ = lego("renew", "--days", "99999", "--no-random-sleep")
        output = refused.stdout + refused.stderr
        assert refused.returncode != 0, describe(refused, acme)
        assert "urn:ietf:params:acme:error:rateLimited" in output, describe(refused, acme)
        assert "429" in output, output
        assert "certificates_per_names = 1/7d" in output, output
        assert re.search(r"resets at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", output), output
    with serving_acme(tmp_path / "acme-ca", LIMITS) as again:  # the same database
        lego = Lego(again, tmp_path / "lego")  # a new port: lego registers again
        refused, _ = lego("run")
        assert "rateLimited" in refused.stdout + refused.stderr, describe(refused, again)
