"""The indexes behind what operators look at (issue 13 items 4-6) in SQLite, read from
EXPLAIN QUERY PLAN: the lists walk an index newest first and stop at their limit (no
sort of the whole table), the counts read a range of one index, and the audit log's
pages start where they should."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

import acme_ca.store.sqlite.audit as audit_module
import acme_ca.store.sqlite.operations as operations_module
from acme_ca.store import SqliteStore
from acme_ca.store.operations import ACCOUNTS_PAGE

T = "2026-01-01T00:00:00.000000Z"
ACCOUNTS = ACCOUNTS_PAGE
ORDERS = operations_module._ORDERS

PLANS = [
    # Lists: an index walked backwards, no sort (the LIMIT stops the walk).
    (ACCOUNTS.format("1"), (10,), "accounts USING INDEX accounts_by_created"),
    (ACCOUNTS.format("(created_at, id) < (?, ?) AND status = ?"), (T, "a", "valid", 10),
     "accounts USING INDEX accounts_by_created ((created_at,id)<(?,?))"),
    (ORDERS.format("1"), (10,), "orders USING INDEX orders_by_created"),
    (ORDERS.format("created_at < ? AND status = ?"), (T, "ready", 10),
     "orders USING INDEX orders_by_created (created_at<?)"),
    (ORDERS.format("(created_at, id) < (?, ?) AND account_id = ?"), (T, "o", "a", 10),
     "orders USING INDEX orders_by_account (account_id=? AND (created_at,id)<(?,?))"),
    # Counts: one range of an index that holds every column read.
    (operations_module._ISSUANCE, (T,),
     "certificates USING COVERING INDEX certificates_by_status (status=? AND created_at>?)"),
    (operations_module._FAILED, (T,), "challenges USING INDEX challenges_invalid "
                                      "(validated_at>?)"),
    # The dashboard's recent revocations (review of issue 13 item 6): the revoked rows'
    # index walked backwards, no sort of every revoked row; the count never reads the
    # table.
    (operations_module._LATEST_REVOCATIONS, (T, 8),
     "certificates USING INDEX certificates_revoked_latest (status=?)"),
    (operations_module._COUNT_REVOCATIONS, (T,),
     "certificates USING COVERING INDEX certificates_revoked_latest (status=?)"),
    # The audit log: the primary key from after_seq, or from the first entry since.
    (audit_module._PAGE, (0, 10), "audit_log USING INTEGER PRIMARY KEY (rowid>?)"),
    (audit_module._PAGE_SINCE, (0, T, 10),
     "audit_log USING COVERING INDEX audit_log_by_time (at>?)"),
]


@pytest.mark.parametrize(("sql", "params", "index"), PLANS)
async def test_operations_read_through_an_index(tmp_path: Path, sql: str,
                                                params: tuple[object, ...], index: str):
    path = tmp_path / "acme.db"
    await (await SqliteStore.open(path)).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert index in plan, plan
    assert "FOR ORDER BY" not in plan or sql == operations_module._FAILED, plan
    for table in ("accounts", "orders", "certificates", "challenges"):
        assert f"SCAN {table} |" not in f"{plan} |", plan  # a scan without an index


async def test_the_newest_audit_entry_is_read_without_a_sort(tmp_path: Path):
    """``last_audit_entry``: the rowid table read backwards, one row (SQLite prints a
    backwards rowid walk as a plain SCAN; what matters is that nothing is sorted)."""
    path = tmp_path / "acme.db"
    await (await SqliteStore.open(path)).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {audit_module._LAST}")]
    assert plan == ["SCAN audit_log"]
