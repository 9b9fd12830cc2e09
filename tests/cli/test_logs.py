"""`[server] log_format = "json"` (issue 13, item 3): the formatter's lines, in and out
of a request, and what `serve` prints turned into JSON lines too (cli/logs.py)."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import sys
from datetime import UTC, datetime

import pytest

from acme_ca.cli import logs
from acme_ca.cli.logs import JsonFormatter
from acme_ca.domain.audit import AuditAction, AuditEvent, account_actor, admin_actor
from acme_ca.domain.origin import Origin, set_origin
from acme_ca.store.audit import next_entry, witness


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("acme_ca.test", logging.WARNING, __file__, 1, message,
                             args or ("world",), None)
    made.__dict__.update(extra)
    return made


def test_a_line_outside_a_request_has_time_level_logger_message_only() -> None:
    line = json.loads(JsonFormatter().format(record()))
    assert set(line) == {"time", "level", "logger", "message"}
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING", "acme_ca.test", "hello world")
    assert line["time"].endswith("Z") and line["time"][10] == "T"


def formatted_in(origin: Origin, made: logging.LogRecord) -> dict[str, object]:
    """The line of ``made`` written while a request of ``origin`` is handled."""

    def inside() -> str:
        set_origin(origin)
        return JsonFormatter().format(made)

    return json.loads(contextvars.copy_context().run(inside))


def test_a_line_in_a_request_says_its_id_account_endpoint_and_client_ip() -> None:
    origin = Origin(actor=account_actor("Ab3"), client_ip="10.0.0.7",
                    request_id="9f2c4a1b0d3e5f67", endpoint="/acme/order/{id}")
    line = formatted_in(origin, record("POST %s", "x", method="POST", status=201,
                                       latency_ms=3.5))
    assert line["request_id"] == "9f2c4a1b0d3e5f67" and line["account"] == "Ab3"
    assert line["actor"] == "account:Ab3" and line["endpoint"] == "/acme/order/{id}"
    assert (line["client_ip"], line["method"], line["status"], line["latency_ms"]) == (
        "10.0.0.7", "POST", 201, 3.5)


def test_an_admin_is_an_actor_and_no_account() -> None:
    origin = Origin(actor=admin_actor("alice", "0a1b"), request_id="r1")
    line = formatted_in(origin, record())
    assert line["actor"] == "admin:alice:0a1b" and "account" not in line


def test_an_exception_stays_on_one_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        made = record(exc_info=sys.exc_info())
    text = JsonFormatter().format(made)
    assert "\n" not in text
    assert "ValueError: boom\nsecond line" in json.loads(text)["exception"]


def test_what_serve_prints_becomes_json_lines_on_the_same_stream() -> None:
    out = io.StringIO()
    printed = logs._PrintedAsRecords(out, JsonFormatter())
    print("acme-ca 1.0 serving https://ca:8555", file=printed)
    print("  ACME directory:   https://ca:8555/directory\n", end="", file=printed)
    print("", file=printed)
    printed.write("partial ")
    printed.write("line\n")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "acme-ca 1.0 serving https://ca:8555", "ACME directory:   https://ca:8555/directory",
        "partial line"]
    assert {(line["logger"], line["level"]) for line in lines} == {("acme_ca.serve", "INFO")}


def test_the_audit_head_line_goes_to_serve_s_log_not_the_audit_stderr_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13 item 4, review finding F1 (a): the witness line of each append (logger
    acme_ca.audit.head, INFO) reaches the log serve configures (the root logger's
    handler, text or JSON), although acme_ca.audit above it keeps to WARNING and its
    own `acme-ca: audit:` line on standard error."""
    import acme_ca.cli.audit  # noqa: F401  (as every command: configures acme_ca.audit)

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level, root.level = root.level, logging.INFO
    root.addHandler(handler)
    try:
        witness(next_entry(AuditEvent(AuditAction.ACCOUNT_CREATED, "account:a"),
                           datetime(2026, 1, 1, tzinfo=UTC), None))
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
    assert (line["level"], line["logger"]) == ("INFO", "acme_ca.audit.head")
    assert line["message"].startswith("audit log head 1:")
    assert "acme-ca: audit:" not in capsys.readouterr().err
