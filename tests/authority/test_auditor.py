"""The Auditor's fallback (issue 13 item 4, review findings F4 and F8): an entry the
store cannot take is logged whole, as one line of JSON with its time, whatever the
failure, and ``record`` never raises (the change it records is already stored)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from acme_ca.authority.audit import Auditor
from acme_ca.clock import FakeClock
from acme_ca.domain.audit import AuditAction
from acme_ca.domain.origin import Origin, current_origin, set_origin
from acme_ca.errors import StoreUnavailable
from acme_ca.store import SqliteStore
from tests.store.conftest import T0


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def audit_lines() -> Iterator[Kept]:
    """The records of the logger acme_ca.audit (which ``cli/audit`` keeps from the root
    logger, where caplog listens)."""
    kept, logger = Kept(), logging.getLogger("acme_ca.audit")
    logger.addHandler(kept)
    yield kept
    logger.removeHandler(kept)


@pytest.mark.parametrize("failure", [
    StoreUnavailable("postgres at db:5432 is unavailable"),
    UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed"),
    RuntimeError("a bug in a backend"),
])
async def test_an_entry_the_store_cannot_take_is_one_json_line_with_its_time(
        store: SqliteStore, monkeypatch: pytest.MonkeyPatch,
        audit_lines: Kept, failure: Exception) -> None:
    async def fails(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(store, "append_audit", fails)
    previous = current_origin()
    set_origin(Origin(actor="cli:root (sudo by \udcff)\nforged", client_ip="192.0.2.7",
                      request_id="r1"))
    try:
        entry = await Auditor(store, FakeClock(T0)).record(
            AuditAction.CERTIFICATE_REVOKED, serial="0a", identifiers=("x.example",),
            details={"reason": "keyCompromise"})
    finally:
        set_origin(previous)
    assert entry is None
    (record,) = audit_lines.records
    assert record.levelno == logging.ERROR
    line = record.getMessage()
    assert "\n" not in line and type(failure).__name__ in line
    logged = json.loads(line.split("; the entry: ", 1)[1])
    assert logged == {"at": "2026-01-01T12:00:00.123456Z", "action": "certificate.revoked",
                      "actor": "cli:root (sudo by \udcff)\nforged",
                      "client_ip": "192.0.2.7", "identifiers": ["x.example"],
                      "serial": "0a", "details": {"reason": "keyCompromise"}}
