"""`[server] log_format = "json"` (issue 13, item 3) on a real `acme-ca serve` process:
lego gets a certificate, then the server is stopped by its pid, and every line it wrote
on standard output and standard error is one JSON object; the access lines of lego's
requests name lego's account, the endpoint and the status, and no line carries a
secret of the request (a JWS signature)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from integration.clients import NAMES, AcmeServer, expect_ok, write_config
from integration.conftest import free_port, log_path, serving_config
from integration.test_lego import Lego

pytestmark = pytest.mark.integration


def parsed(text: str, stream: str) -> list[dict[str, Any]]:
    """Every line of ``text``, each of which must be one JSON object."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            pytest.fail(f"{stream} line {number} is not JSON: {line!r}")
        assert isinstance(value, dict), line
        assert {"time", "level", "logger", "message"} <= set(value), line
        lines.append(value)
    return lines


def lego_account(lego: Lego) -> str:
    """The id of the account lego registered (the end of its account URL)."""
    (saved,) = lego.home.rglob("account.json")
    return str(json.loads(saved.read_text())["registration"]["uri"]).rsplit("/", 1)[-1]


def test_serve_logs_json_lines_with_the_account_and_status_of_each_request(
        tmp_path: Path) -> None:
    workdir = tmp_path / "acme-ca"
    workdir.mkdir()
    data_dir, port, http01_port = workdir / "data", free_port(), free_port()
    config = write_config(workdir / "acme-ca.toml", data_dir=data_dir, port=port,
                          http01_port=http01_port)
    text = config.read_text().replace("[server]\n", '[server]\nlog_format = "json"\n', 1)
    config.write_text(text)
    with serving_config(config, data_dir, port) as server:  # first start: makes its CA
        acme = AcmeServer(server, http01_port)
        lego = Lego(acme, tmp_path / "lego")
        result, _ = lego("run")
        expect_ok(result, acme)
    stdout = parsed(log_path(data_dir, port, "stdout").read_text(), "stdout")
    stderr = parsed(log_path(data_dir, port, "stderr").read_text(), "stderr")
    assert any("serving" in line["message"] for line in stdout), stdout  # the banner
    account = lego_account(lego)
    access = [line for line in stderr if line["logger"] == "acme_ca.access"]
    posts = [line for line in access if line["method"] == "POST"]
    endpoints = {line["endpoint"] for line in posts}
    assert {"/acme/new-account", "/acme/new-order", "/acme/order/{id}/finalize",
            "/acme/chall/{id}"} <= endpoints, endpoints
    for line in posts:
        assert line["account"] == account, line
        assert isinstance(line["status"], int) and 200 <= line["status"] < 300, line
        assert line["client_ip"] == "127.0.0.1" and line["request_id"], line
        assert isinstance(line["latency_ms"], int | float), line
    issued = [line for line in stderr if NAMES[0] in line["message"]
              and "certificate" in line["message"]]
    assert issued and all(line["account"] == account for line in issued), issued
    assert all("signature" not in line["message"] for line in stderr)
