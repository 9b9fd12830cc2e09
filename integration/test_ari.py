"""ACME Renewal Information (RFC 9773) with certbot 5.8 (this virtualenv's) against a
live `acme-ca serve`.

certbot reads ARI in `certbot renew` (certbot/_internal/renewal.py should_autorenew):
with a renewal time from the server it ignores its own schedule (half the lifetime of a
certificate under 10 days), and it keeps the Retry-After in the lineage's renewal
configuration (``ari_retry_after``), not asking again before then. It sends no
"replaces" in newOrder (acme.client.ClientV2.new_order has no such argument), so the
replacement bookkeeping is tested in tests/protocol/test_replaces.py.

- An operator marks one of two certificates (`acme-ca certs renew-early SERIAL`): the
  next `certbot renew` renews that one and not the other.
- Short-lived rotation with no operator: 1-hour certificates. The server's window
  (RFC 9773 4.2: centred at two thirds of the lifetime, a fifteenth of it wide) is
  notBefore+38 to +42 minutes, checked on the wire; notBefore is backdated a minute, so
  that is 37 to 41 minutes after the issuance. certbot runs under libfaketime
  (`faketime -f +33m` ...: certbot lives 33 minutes later, the server on real time).
  At +20 and +33 minutes it does not renew: before the window; at +33 certbot's own
  schedule (half the lifetime) would have renewed, so not renewing there shows that
  the server's window, not certbot's default, decides. At +45 minutes, after the
  window's end, it renews (4.2: a window in the past means renew now; inside it
  certbot picks a random moment, which a single run cannot pin down).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from configobj import ConfigObj
from cryptography import x509

from acme_ca.authority.renewal_info import cert_id_of
from integration.clients import (
    AcmeServer,
    expect_ok,
    load_certs,
    serving_acme,
    verify_chain,
)
from integration.conftest import https_get, require_program, run_cli
from integration.test_certbot import Certbot

pytestmark = pytest.mark.integration

WEB, API = "web.bluerobin.local", "api.bluerobin.local"


def faketime(offset: str) -> list[str]:
    """certbot runs ``offset`` later than the clock (libfaketime, LD_PRELOAD). Its
    monotonic clock moves with it: with FAKETIME_DONT_FAKE_MONOTONIC=1, Python's
    time.sleep (clock_nanosleep on CLOCK_MONOTONIC with an absolute deadline) fails
    with EINVAL under libfaketime 0.9.10, and certbot sleeps while it polls an order."""
    return [require_program("faketime"), "-f", offset]


def certonly(certbot: Certbot, acme: AcmeServer, name: str) -> int:
    """A lineage named ``name`` for the one name ``name`` (standalone http-01); its serial."""
    result, _ = certbot(
        "certonly", "--standalone", "--http-01-port", str(acme.http01_port),
        "--http-01-address", "127.0.0.1", "--server", acme.directory, "-d", name,
        "--cert-name", name, "--agree-tos", "--register-unsafely-without-email")
    expect_ok(result, acme)
    # certbot's own renew_before_expiry would decide alongside ARI: it must be unset
    params = renewal_conf(certbot, name)["renewalparams"]
    assert "renew_before_expiry" not in params, dict(params)
    return serial_of(certbot, name)


def renewal_conf(certbot: Certbot, name: str) -> ConfigObj:
    """The lineage's renewal configuration (configobj's format, as certbot writes it)."""
    return ConfigObj(str(certbot.home / "config" / "renewal" / f"{name}.conf"))


def serial_of(certbot: Certbot, name: str) -> int:
    live = certbot.home / "config" / "live" / name
    return load_certs(live / "cert.pem")[0].serial_number


def mark_renew_early(acme: AcmeServer, serial: int) -> None:
    """`acme-ca certs renew-early SERIAL`, the serial as openssl prints it (upper case)."""
    config = acme.server.data_dir.parent / "acme-ca.toml"
    result = run_cli("--config", config, "certs", "renew-early", format(serial, "X"),
                     cwd=config.parent)
    assert "Marked 1 certificate" in result.stdout, result.stdout + result.stderr


def renew(certbot: Certbot, acme: AcmeServer, *prefix: str) -> str:
    """`certbot renew` (standalone, no random sleep), under ``prefix``; its output."""
    result, _ = certbot("renew", "--no-random-sleep-on-renew", "--standalone",
                        "--http-01-port", str(acme.http01_port),
                        "--http-01-address", "127.0.0.1", prefix=prefix)
    expect_ok(result, acme)
    return result.stdout + result.stderr


def test_certbot_renews_the_certificate_the_operator_marked(tmp_path: Path) -> None:
    """RFC 9773 4.2: `acme-ca certs renew-early` puts the marked certificate's window in
    the past; certbot renews it on its next run, and leaves the other one alone."""
    with serving_acme(tmp_path / "acme-ca") as acme:
        certbot = Certbot(acme, tmp_path / "certbot")
        marked, kept = certonly(certbot, acme, WEB), certonly(certbot, acme, API)
        mark_renew_early(acme, marked)
        output = renew(certbot, acme)
        assert serial_of(certbot, WEB) != marked, describe_renew(output, acme)
        assert serial_of(certbot, API) == kept, describe_renew(output, acme)
        live = certbot.home / "config" / "live" / WEB
        verify_chain(acme.root_cert, live / "cert.pem", live / "chain.pem")


def test_short_lived_certificates_rotate_from_ari_alone(tmp_path: Path) -> None:
    """RFC 9773 4.2, 4.3: 1-hour certificates, certbot on its timer, no operator: the
    window is notBefore+38..42 minutes (issuance+37..41); not renewed before it (at +20
    and +33 minutes, where certbot's default of half the lifetime would have), renewed
    once it has passed (+45 minutes)."""
    extra = '\n[profiles.server]\ndefault_validity = "1h"\n'
    with serving_acme(tmp_path / "acme-ca", extra=extra) as acme:
        certbot = Certbot(acme, tmp_path / "certbot")
        first = certonly(certbot, acme, WEB)
        leaf = load_certs(certbot.home / "config" / "live" / WEB / "cert.pem")[0]
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=1)
        start, end = suggested_window(acme, leaf)  # whole seconds, end rounded up
        for got, minutes in ((start, 38), (end, 42)):
            off = got - (leaf.not_valid_before_utc + timedelta(minutes=minutes))
            assert abs(off) <= timedelta(seconds=1), (start, end, leaf.not_valid_before_utc)
        for early in ("+20m", "+33m"):
            output = renew(certbot, acme, *faketime(early))
            assert serial_of(certbot, WEB) == first, describe_renew(output, acme)
            assert "not yet due" in output.lower(), output
        output = renew(certbot, acme, *faketime("+45m"))
        assert serial_of(certbot, WEB) != first, describe_renew(output, acme)
        # certbot asked the server, and keeps its Retry-After
        assert renewal_conf(certbot, WEB)["acme_renewal_info"]["ari_retry_after"]


def suggested_window(acme: AcmeServer, leaf: x509.Certificate) -> tuple[datetime, datetime]:
    """The server's answer for ``leaf`` (RFC 9773 4.1: GET the directory's renewalInfo,
    "/", the CertID), over TLS trusting only the root."""
    port = urlsplit(acme.server.base_url).port

    def get(url: str) -> dict:
        answer = https_get(port, urlsplit(url).path, acme.root_cert)
        assert answer.status == 200, answer
        return json.loads(answer.body)

    base = get(acme.directory)["renewalInfo"]
    window = get(f"{base}/{cert_id_of(leaf)}")["suggestedWindow"]
    return (datetime.fromisoformat(window["start"].replace("Z", "+00:00")),
            datetime.fromisoformat(window["end"].replace("Z", "+00:00")))


def describe_renew(output: str, acme: AcmeServer) -> str:
    return f"--- certbot renew\n{output}\n{acme.logs()}"

