"""SQLite's schema: the CHECK constraints on statuses and flags, and an index behind
every lookup the store runs (EXPLAIN QUERY PLAN)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import pytest

import acme_ca.store.sqlite.accounts as accounts_module
import acme_ca.store.sqlite.authorizations as authz_module
import acme_ca.store.sqlite.limits as limits_module
import acme_ca.store.sqlite.nonces as nonces_module
import acme_ca.store.sqlite.orders as orders_module
import acme_ca.store.sqlite.retention as retention_module
from acme_ca.store import SqliteStore
from acme_ca.store.sqlite.opening import nonce_path
from tests.store.conftest import ACCOUNT


def raw(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(path))


REFUSED_ROWS = [
    "INSERT INTO accounts VALUES ('a', 'bogus', '{}', 't', '[]', 1, 'x', NULL)",
    "INSERT INTO accounts VALUES ('a', 'valid', '{}', 't', '[]', 2, 'x', NULL)",
    "INSERT INTO orders (id, account_id, status, identifiers, expires, created_at) "
    "VALUES ('o', 'acct-1', 'bogus', '[]', 'x', 'x')",
    # RFC 8555 7.1.3: a valid order has a certificate.
    "INSERT INTO orders (id, account_id, status, identifiers, expires, created_at) "
    "VALUES ('o', 'acct-1', 'valid', '[]', 'x', 'x')",
    "INSERT INTO authorizations VALUES ('z', 'acct-1', 'dns', 'x', 0, 'bogus', 'x', 'x')",
    "INSERT INTO authorizations VALUES ('z', 'acct-1', 'dns', 'x', 2, 'valid', 'x', 'x')",
    "INSERT INTO challenges (id, authorization_id, type, token, status) "
    "VALUES ('c', 'z', 'http-01', 't', 'bogus')",
]


@pytest.mark.parametrize("sql", REFUSED_ROWS)
async def test_the_schema_checks_status_values_and_flags(
    acme_store: SqliteStore, db_file: Path, sql: str
):
    """RFC 8555 7.1.6 lists the statuses each resource may have; no other is stored."""
    with raw(db_file) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(sql)


# The statements the store runs, by module: each must find its rows through an index.
LOOKUPS = [
    (accounts_module._BY_THUMBPRINT, ("t",), "accounts_by_thumbprint"),
    (orders_module._NEXT_PAGE, (ACCOUNT, 100, "o"), "orders_by_account"),
    (orders_module._FIRST_PAGE, (ACCOUNT, 100), "orders_by_account"),
    (orders_module._BY_ID, ("o",), "sqlite_autoindex_orders_1"),
    (orders_module._FOR_AUTHORIZATION, ("a",), "order_authorizations_by_authorization"),
    (orders_module.PROCESSING_SINCE, ("t", 100), "orders_processing"),
    (authz_module._REUSABLE, (ACCOUNT, "x", "t", "dns", 0), "authorizations_for_reuse"),
    (authz_module._VALID, (ACCOUNT, "t", "[]"), "authorizations_for_reuse"),
    (authz_module._PROCESSING, ("t", 100), "challenges_processing"),
    (authz_module._BY_ID, ("a",), "challenges_by_authorization"),
    (authz_module._PENDING_ORDERS, ("a",), "order_authorizations_by_authorization"),
    (authz_module._LISTED, ("o",), "order_authorizations USING PRIMARY KEY (order_id=?)"),
    (retention_module.PRUNABLE_ORDERS, ("t", 100), "orders_by_expiry (expires<?)"),
    (retention_module.PRUNABLE_AUTHORIZATIONS, ("t", 100),
     "authorizations_by_expiry (expires<?)"),
    (retention_module.DELETE_LINKS, ("[]",), "order_authorizations USING PRIMARY KEY"),
    (retention_module.DELETE_ORDERS, ("[]",), "sqlite_autoindex_orders_1 (id=?)"),
    (retention_module.DELETE_CHALLENGES, ("[]",), "challenges_by_authorization"),
    (retention_module.DELETE_AUTHORIZATIONS, ("[]",),
     "sqlite_autoindex_authorizations_1 (id=?)"),
    (retention_module.PRUNE_LIMITS, ("t", 100), "rate_limits_by_tat (tat<?)"),
    # The pending authorizations of one account, and no others (a partial index).
    (limits_module.PENDING_COUNT, (ACCOUNT, "t"),
     "authorizations_pending (account_id=? AND expires>?)"),
]
NONCE_LOOKUPS = [
    (nonces_module._CONSUME, ("n",), "PRIMARY KEY"),
    (nonces_module._PURGE, ("t", 10), "nonces_by_expiry"),
]


@pytest.mark.parametrize(("sql", "params", "index", "nonces"),
                         [(*lookup, False) for lookup in LOOKUPS]
                         + [(*lookup, True) for lookup in NONCE_LOOKUPS])
async def test_every_lookup_uses_an_index(
    acme_store: SqliteStore, db_file: Path, sql: str, params: tuple[object, ...], index: str,
    nonces: bool,
):
    with raw(Path(nonce_path(str(db_file))) if nonces else db_file) as conn:
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert index in plan, plan
    assert "SCAN authorizations" not in plan and "SCAN challenges" not in plan, plan
    assert "SCAN orders" not in plan and "SCAN order_authorizations" not in plan, plan
    assert "SCAN accounts" not in plan and "SCAN nonces" not in plan, plan
    assert not re.search(r"SCAN a\b", plan) and "SCAN rate_limits" not in plan, plan
