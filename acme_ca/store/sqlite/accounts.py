"""ACME accounts in SQLite (RFC 8555 7.3): the account methods of ``ReadStore`` and
``WriteStore`` for ``SqliteStore``.

Every call is one statement (``create_account`` with an External Account Binding key
also reads the key it binds, in the same transaction: ``eab``); a compare-and-set
returns the new row with ``RETURNING``.
Only when it changed nothing does a second query find out why (no such account:
``NotFound``; another state: ``Conflict``; worded by ``guards``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from acme_ca.domain.models import Account, AccountStatus
from acme_ca.errors import Conflict, NotFound
from acme_ca.store import guards
from acme_ca.store.sqlite.base import SqliteBase
from acme_ca.store.sqlite.connection import Connection
from acme_ca.store.sqlite.eab import binding_refused
from acme_ca.store.sqlite.rows import account_row, contact_json, to_account

# ON CONFLICT DO NOTHING covers both the id and the thumbprint: no row comes back.
_INSERT = """
INSERT INTO accounts (id, status, jwk, thumbprint, contact, terms_agreed, created_at,
                      eab_kid)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING
RETURNING *"""
_BY_ID = "SELECT * FROM accounts WHERE id = ?"
_BY_THUMBPRINT = "SELECT * FROM accounts WHERE thumbprint = ?"
_UPDATE = """
UPDATE accounts SET status = COALESCE(?, status), contact = COALESCE(?, contact)
WHERE id = ? AND status = ?
RETURNING *"""
# A thumbprint another account holds violates accounts_by_thumbprint: Conflict.
_CHANGE_KEY = """
UPDATE accounts SET jwk = ?, thumbprint = ?
WHERE id = ? AND thumbprint = ? AND status = 'valid'
RETURNING *"""
_STATE = "SELECT status, thumbprint FROM accounts WHERE id = ?"


class AccountMethods(SqliteBase):
    async def create_account(self, account: Account) -> Account:
        async def insert(conn: Connection) -> list[sqlite3.Row]:
            if account.eab_kid is not None:  # the key is read where it is bound
                refused = await binding_refused(conn, account.eab_kid, account.created_at)
                if refused is not None:
                    raise refused
            return list(await conn.execute_fetchall(_INSERT, account_row(account)))

        rows = await self._transaction(insert)
        if not rows:
            raise Conflict(f"an account with key thumbprint {account.thumbprint} or id "
                           f"{account.id} already exists")
        return to_account(rows[0])

    async def get_account(self, account_id: str) -> Account:
        rows = await self._read(_BY_ID, (account_id,))
        if not rows:
            raise guards.not_found("account", account_id)
        return to_account(rows[0])

    async def find_account_by_thumbprint(self, thumbprint: str) -> Account:
        rows = await self._read(_BY_THUMBPRINT, (thumbprint,))
        if not rows:
            raise NotFound(f"no account with key thumbprint {thumbprint}")
        return to_account(rows[0])

    async def update_account(
        self,
        account_id: str,
        *,
        expected_status: AccountStatus,
        status: AccountStatus | None = None,
        contact: Sequence[str] | None = None,
    ) -> Account:
        values = (
            None if status is None else status.value,
            contact_json(contact),
            account_id,
            expected_status.value,
        )
        row = await self._compare_and_set(_UPDATE, values, "account", account_id,
                                          expected_status.value)
        return to_account(row)

    async def change_account_key(
        self, account_id: str, *, old_thumbprint: str, jwk: str, thumbprint: str
    ) -> Account:
        try:
            rows = await self._write(_CHANGE_KEY, (jwk, thumbprint, account_id, old_thumbprint))
        except Conflict:  # accounts_by_thumbprint
            raise Conflict(f"another account already has key thumbprint {thumbprint}") from None
        if rows:
            return to_account(rows[0])
        found = await self._read(_STATE, (account_id,))
        if found and found[0]["thumbprint"] != old_thumbprint:
            raise Conflict(f"the key of account {account_id} changed meanwhile")
        raise guards.refused("account", account_id, found[0]["status"] if found else None,
                             "valid")
