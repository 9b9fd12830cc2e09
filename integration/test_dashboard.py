"""The dashboard in a real browser (issue 13 item 6): Debian's chromium, driven by
chromedriver through selenium, against a real `acme-ca serve` with [admin] listen.

lego gets a certificate through ACME; `acme-ca admin-cert` makes alice's admin
certificate, which goes, with the CA's root as trusted, into a private NSS database in a
temporary HOME (certutil, pk12util), the one Chromium on Linux reads; a managed policy
(AutoSelectCertificateForUrls, written under /etc/chromium/policies/managed/ for this
test and removed after it: root only) lets the headless browser present it without a
prompt. Then every page loads over mTLS and is screenshotted, the certificate just issued
is shown, and the revoke button, after its confirmation, revokes it (`acme-ca certs show`
says so), while the same form posted from a page of another site is refused (CSRF). A
browser and a client without an admin certificate, or with the ordinary certificate lego
got from the same CA, are refused.

The screenshots go to a directory under the test's tmp_path, which the test prints, and
are copied to $ACME_CA_SCREENSHOTS when it is set.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.clients import NAMES, AcmeServer, expect_ok, load_certs, run_client, serving_acme
from integration.conftest import free_port, run, run_cli
from tests.required import missing, require_program

pytestmark = pytest.mark.integration

DOMAIN = NAMES[0]
POLICIES = Path("/etc/chromium/policies/managed")
P12_PASSWORD = "dashboard test password"
PAGES = {  # screenshot name -> (path, the page's heading)
    "overview": ("/dashboard/", "Overview"),
    "certificates": ("/dashboard/certificates", "Certificates"),
    "revocations": ("/dashboard/revocations", "Revocations"),
    "accounts": ("/dashboard/accounts", "Accounts"),
    "eab-keys": ("/dashboard/eab", "External Account Binding keys"),
    "failed-validations": ("/dashboard/validations", "Failed validations"),
}


FORGED = """<!DOCTYPE html><title>Win a prize</title>
<form method="post" action="{origin}/dashboard/certificates/{serial}/revoke">
<input type="hidden" name="token" value="{token}">
<input type="hidden" name="reason" value="keyCompromise">
<button id="prize">Win a prize</button></form>"""


@contextlib.contextmanager
def another_site(page: str) -> Iterator[str]:
    """``page`` served over plain HTTP on a free port: a web page of another origin, as an
    attacker's; its URL. The server (a thread of this process) is shut down after."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def nss_home(home: Path, root: Path, p12: Path | None) -> Path:
    """A HOME whose NSS database (~/.pki/nssdb, what Chromium reads) trusts ``root`` for
    servers and holds the key and certificate of ``p12``, if given."""
    certutil, pk12util = require_program("certutil"), require_program("pk12util")
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    nss = f"sql:{db}"
    run([certutil, "-N", "-d", nss, "--empty-password"], cwd=home)
    run([certutil, "-A", "-n", "acme-ca test root", "-t", "C,,", "-d", nss, "-i", root],
        cwd=home)
    if p12 is not None:
        run([pk12util, "-i", p12, "-d", nss, "-W", P12_PASSWORD], cwd=home)
    return home


@contextlib.contextmanager
def client_certificate_policy(origin: str) -> Iterator[None]:
    """Chromium presents the matching client certificate to ``origin`` without asking
    (AutoSelectCertificateForUrls), for as long as the block runs."""
    if os.geteuid() != 0:
        missing("Chromium reads its managed policies from /etc/chromium/policies: root "
                "writes them (CI runs as root)")
    made = [p for p in (POLICIES.parent, POLICIES) if not p.exists()]
    POLICIES.mkdir(parents=True, exist_ok=True)
    policy = POLICIES / f"acme-ca-test-{secrets.token_hex(4)}.json"
    rule = json.dumps({"pattern": origin, "filter": {}})
    policy.write_text(json.dumps({"AutoSelectCertificateForUrls": [rule]}), encoding="utf-8")
    try:
        yield
    finally:
        policy.unlink()
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()


@contextlib.contextmanager
def chromium(home: Path) -> Iterator[Any]:
    """Headless Chromium under chromedriver (Debian's, never one Selenium Manager would
    download), with ``home`` as HOME; quit, and chromedriver stopped by its pid, after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = require_program("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--window-size=1280,900", f"--user-data-dir={home / 'profile'}",
                     "--no-first-run", "--disable-extensions", "--hide-scrollbars"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACME_CA_")}
    service = Service(require_program("chromedriver"), env={**env, "HOME": str(home)})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        service.stop()


def screenshot(driver: Any, folder: Path, name: str) -> Path:
    """The whole page, however long, as folder/NAME.png (DevTools' capture beyond the
    viewport)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    width = metrics["cssLayoutViewport"]["clientWidth"]
    height = metrics["cssContentSize"]["height"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def tls_get(port: int, root: Path, cert: Path | None, key: Path | None = None) -> str:
    """GET /dashboard/ with Python's TLS client, with or without a client certificate:
    "HTTP <status>", or the handshake's failure."""
    context = ssl.create_default_context(cafile=str(root))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.sock = tls
            connection.request("GET", "/dashboard/")
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
            return f"HTTP {response.status} {body[:200]}"
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"


def lego(acme: AcmeServer, home: Path, domain: str, http_port: int
         ) -> subprocess.CompletedProcess[str]:
    """`lego run` for ``domain``, answering http-01 on 127.0.0.1:``http_port``."""
    argv = [require_program("lego"), "--server", acme.directory, "--accept-tos", "--email",
            "ops@bluerobin.local", "--domains", domain, "--path", str(home), "--http",
            "--http.port", f"127.0.0.1:{http_port}", "run"]
    home.mkdir(parents=True, exist_ok=True)
    result, _ = run_client(argv, cwd=home, env={"LEGO_CA_CERTIFICATES": str(acme.root_cert)},
                           acme=acme)
    return result


def lego_certificate(acme: AcmeServer, home: Path) -> tuple[str, Path, Path]:
    """A certificate for DOMAIN through ACME (lego, http-01): serial, cert, key; and a
    validation that fails (lego answers on a port the CA does not connect to)."""
    expect_ok(lego(acme, home, DOMAIN, acme.http01_port), acme)
    failed = lego(acme, home, NAMES[1], free_port())
    assert failed.returncode != 0, failed.stdout
    cert = home / "certificates" / f"{DOMAIN}.crt"
    key = home / "certificates" / f"{DOMAIN}.key"
    return format(load_certs(cert)[0].serial_number, "x"), cert, key


def test_the_dashboard_in_chromium(tmp_path: Path) -> None:
    """Issue 13 item 6: the pages load over mTLS with an admin certificate, show a
    certificate just issued through ACME, and the revoke button revokes it; a screenshot
    of each page; a request without an admin certificate is refused."""
    try:
        import selenium  # noqa: F401 (the test extra installs it)
    except ImportError:
        missing("selenium is not installed (pip install -e '.[test]')")
    for program in ("chromium", "chromedriver", "certutil", "pk12util", "lego"):
        require_program(program)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    admin_port = free_port()
    with serving_acme(tmp_path / "ca", f'\n[admin]\nlisten = "127.0.0.1:{admin_port}"\n'
                      ) as acme:
        config = acme.server.data_dir.parent / "acme-ca.toml"
        serial, leaf, leaf_key = lego_certificate(acme, tmp_path / "lego")
        password = tmp_path / "p12.pass"
        password.write_text(P12_PASSWORD + "\n")
        p12 = tmp_path / "alice.p12"
        made = run_cli("--config", config, "admin-cert", "--name", "alice", "--out", p12,
                       "--password-file", password, cwd=tmp_path)
        assert "alice" in made.stdout, made.stdout
        origin = f"https://127.0.0.1:{admin_port}"

        # Without an admin certificate: no client certificate, or lego's own (a
        # certificate of this CA, but not of its admin profile).
        for cert, key in ((None, None), (leaf, leaf_key)):
            answer = tls_get(admin_port, acme.root_cert, cert, key)
            assert answer.startswith(("refused", "HTTP 403")), answer
            assert "Overview" not in answer and serial not in answer

        with client_certificate_policy(origin):
            stranger = nss_home(tmp_path / "stranger", acme.root_cert, None)
            with chromium(stranger) as driver:
                try:
                    driver.get(f"{origin}/dashboard/")
                    seen = driver.page_source
                except Exception as refused:  # selenium: net::ERR_BAD_SSL_CLIENT_AUTH_CERT
                    seen = str(refused)
                assert "Overview" not in seen and serial not in seen, seen[:500]

            home = nss_home(tmp_path / "alice", acme.root_cert, p12)
            with chromium(home) as driver:
                browse(driver, origin, serial, shots)
        shown = json.loads(run_cli("--config", config, "certs", "show", serial, "--json",
                                   cwd=tmp_path).stdout)
        assert (shown["status"], shown["revocation_reason"]) == ("revoked", "keyCompromise")
    published = os.environ.get("ACME_CA_SCREENSHOTS")
    if published:
        shutil.copytree(shots, published, dirs_exist_ok=True)
        print(f"screenshots copied to {published}")


def browse(d: Any, origin: str, serial: str, shots: Path) -> None:
    """Every page over mTLS, with a screenshot; the issued certificate found and revoked
    through its page and the confirmation."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    def heading() -> str:
        return str(d.find_element(By.TAG_NAME, "h1").text)

    def click_and_wait(element: object) -> None:
        """Click, then wait for the next page (the old one's elements go stale)."""
        element.click()  # type: ignore[attr-defined]
        WebDriverWait(d, 15).until(expected_conditions.staleness_of(element))

    for name, (path, title) in PAGES.items():
        d.get(origin + path)
        assert heading() == title, (path, d.page_source[:500])
        assert "alice" in d.find_element(By.CLASS_NAME, "who").text
        screenshot(d, shots, name)
    cells = [td.text for td in d.find_elements(By.CSS_SELECTOR, "td")]  # failed validations
    assert cells[:3] == ["http-01", "connection", "1"], cells
    # The stylesheet applies (CSP allows 'self'); no CSP violation is reported (below).
    header = d.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("background-color") == "rgba(23, 32, 46, 1)"
    d.get(origin + "/dashboard/certificates")
    assert serial in d.page_source
    click_and_wait(d.find_element(By.LINK_TEXT, serial))
    assert heading().startswith(f"Certificate {serial}") and "issued" in heading()
    assert DOMAIN in d.page_source
    screenshot(d, shots, "certificate")
    click_and_wait(d.find_element(By.PARTIAL_LINK_TEXT, "Revoke this certificate"))
    assert heading() == f"Revoke certificate {serial}?"
    Select(d.find_element(By.ID, "reason")).select_by_value("keyCompromise")
    screenshot(d, shots, "revoke-confirmation")
    # CSRF: a page of another site posting the same form, even with the right token,
    # is refused although the browser presents the admin certificate with it.
    token = d.find_element(By.NAME, "token").get_attribute("value")
    with another_site(FORGED.format(origin=origin, serial=serial, token=token)) as site:
        d.get(site)
        click_and_wait(d.find_element(By.ID, "prize"))  # a post to another origin
        assert heading() == "Refused", d.page_source
        assert "nothing was revoked" in d.page_source
        screenshot(d, shots, "cross-site-post-refused")
    d.get(f"{origin}/dashboard/certificates/{serial}")
    assert heading() == f"Certificate {serial} issued"
    click_and_wait(d.find_element(By.PARTIAL_LINK_TEXT, "Revoke this certificate"))
    Select(d.find_element(By.ID, "reason")).select_by_value("keyCompromise")
    click_and_wait(d.find_element(By.ID, "confirm"))
    assert heading() == f"Certificate {serial} revoked", d.page_source
    assert "keyCompromise" in d.page_source
    screenshot(d, shots, "certificate-revoked")
    d.get(origin + "/dashboard/revocations")
    assert serial in d.page_source
    screenshot(d, shots, "revocations-after")
    violations = [entry["message"] for entry in d.get_log("browser")
                  if "Content Security Policy" in entry["message"]]
    assert not violations, violations


def test_a_dashboard_key_that_is_a_link_stops_serve_with_one_line(tmp_path: Path) -> None:
    """Review of issue 13 item 6 (low): ``DATA_DIR/dashboard.key`` was read whatever it
    was; a symbolic link (here to /etc/passwd) now stops `serve` at start with one line
    that names the file, before anything listens."""
    from integration.clients import write_config

    data = tmp_path / "data"
    data.mkdir()
    (data / "dashboard.key").symlink_to("/etc/passwd")
    config = write_config(tmp_path / "acme-ca.toml", data_dir=data, port=free_port(),
                          http01_port=free_port(),
                          extra=f'\n[admin]\nlisten = "127.0.0.1:{free_port()}"\n')
    result = run_cli("--config", config, "serve", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("acme-ca:")]
    assert errors == [result.stderr.strip().splitlines()[-1]]
    assert errors[0] == (f"acme-ca: error: {data / 'dashboard.key'} is a symbolic link: "
                         "delete it and it is made anew at the next start")
