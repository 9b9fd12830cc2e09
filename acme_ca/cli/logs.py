"""How `acme-ca serve` logs: ``[server] log_format``, "text" (the default) or "json".

text: ``2026-12-06 21:30:00,123 INFO acme_ca.access: POST /acme/new-order 201 12.3ms``,
one line a record on standard error, as before JSON existed.

json: one JSON object a line, for a log collector (journald, Loki, Elasticsearch):

    {"time": "2026-12-06T21:30:00.123Z", "level": "INFO", "logger": "acme_ca.access",
     "message": "POST /acme/new-order 201 12.3ms", "request_id": "9f2c4a1b0d3e5f67",
     "actor": "account:Xk3", "account": "Xk3", "endpoint": "/acme/new-order",
     "client_ip": "10.0.0.7", "method": "POST", "status": 201, "latency_ms": 12.3}

``time``, ``level``, ``logger`` and ``message`` are always there; ``request_id``,
``endpoint`` and ``client_ip`` whenever the line was written while a request was
handled (``domain/origin.py``), by any logger, and ``actor`` once the request's signer
is known (``account:ID``, ``key:THUMBPRINT``, ``admin:NAME:SERIAL``; ``account`` too,
the bare id, when an ACME account acts); ``method``, ``status`` and ``latency_ms`` on
the access line that ends each request (``api/middleware.origin_middleware``);
``exception`` with the traceback of an error. What `serve` prints on standard output
(the banner, a first start's summary) becomes JSON lines too, still on standard
output, so that nothing either stream carries is anything but JSON; Python's warnings
too (logger ``py.warnings``). Only a command that cannot start at all (a wrong
configuration, a port taken) says so in its one plain ``acme-ca: error:`` line.

No secret is logged, in either format: the code logs no JWS body, no EAB HMAC key, no
passphrase, no private key; a request's line names its route's path template, not its
URL, and the client's IP is the TCP peer's (no X-Forwarded-For is trusted).
"""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from acme_ca.domain.audit import SYSTEM_ACTOR
from acme_ca.domain.origin import current_origin

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_FIELDS = ("method", "status", "latency_ms")  # api/middleware's access line
ACCOUNT_PREFIX = "account:"  # domain.audit.account_actor's spelling
PRINTED = "acme_ca.serve"  # the logger of what serve prints, in JSON


class JsonFormatter(logging.Formatter):
    """One JSON object a line: see the module docstring for its members."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(request_fields())
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["exception"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def request_fields() -> dict[str, str]:
    """Who and where of the request being handled (the current ``Origin``); nothing
    outside a request (start, background work)."""
    origin = current_origin()
    if origin.request_id is None:
        return {}
    fields = {"request_id": origin.request_id}
    if origin.actor != SYSTEM_ACTOR:  # a client not yet known (directory, nonce): none
        fields["actor"] = origin.actor
    if origin.actor.startswith(ACCOUNT_PREFIX):
        fields["account"] = origin.actor.removeprefix(ACCOUNT_PREFIX)
    if origin.endpoint is not None:
        fields["endpoint"] = origin.endpoint
    if origin.client_ip is not None:
        fields["client_ip"] = origin.client_ip
    return fields


class _PrintedAsRecords(io.TextIOBase):
    """Standard output whose lines are written as JSON log records (logger
    ``acme_ca.serve``, INFO) to the real standard output."""

    def __init__(self, out: TextIO, formatter: logging.Formatter) -> None:
        self._out = out
        self._formatter = formatter
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                record = logging.LogRecord(PRINTED, logging.INFO, __file__, 0, line.strip(),
                                           None, None)
                self._out.write(self._formatter.format(record) + "\n")
        return len(text)

    def flush(self) -> None:
        self._out.flush()


def configure(log_format: str) -> None:
    """Log at INFO to standard error in ``log_format`` ("text" or "json"); in JSON, what
    is printed to standard output is turned into JSON lines too, and so are the lines
    of loggers with a handler of their own (``acme_ca.audit``).

    No record notes what neither format prints (the logging HOWTO's "Optimization"):
    the caller's file and line, which walks the stack for every line, the thread, the
    process and its multiprocessing name."""
    logging._srcfile = None  # the documented switch (logging HOWTO)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if log_format != "json":
        logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)
        return
    formatter = JsonFormatter()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for logger in logging.Logger.manager.loggerDict.values():
        for own in getattr(logger, "handlers", ()):
            own.setFormatter(formatter)
    logging.captureWarnings(True)  # a Python warning is a log line too (py.warnings)
    if not isinstance(sys.stdout, _PrintedAsRecords):
        sys.stdout = _PrintedAsRecords(sys.stdout, formatter)
