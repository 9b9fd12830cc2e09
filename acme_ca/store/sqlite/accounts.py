"""ACME accounts in SQLite (RFC 8555 7.3): ``AccountStore`` for ``SqliteStore``.

Every call is one statement in autocommit mode; a compare-and-set returns the new
row with ``RETURNING``. Only when it changed nothing does a second query find out
why (no such account: ``NotFound``; another state: ``Conflict``).
"""

from __future__ import annotations

from collections.abc import Sequence

from acme_ca.domain.models import Account, AccountStatus
from acme_ca.errors import Conflict, NotFound
from acme_ca.store.sqlite.base import SqliteBase
from acme_ca.store.sqlite.rows import account_row, contact_json, to_account

# ON CONFLICT DO NOTHING covers both the id and the thumbprint: no row comes back.
_INSERT = """
INSERT INTO accounts (id, status, jwk, thumbprint, contact, terms_agreed, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
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
        rows = await self._write(_INSERT, account_row(account))
        if not rows:
            raise Conflict(f"an account with key thumbprint {account.thumbprint} or id "
                           f"{account.id} already exists")
        return to_account(rows[0])

    async def get_account(self, account_id: str) -> Account:
        rows = await self._read(_BY_ID, (account_id,))
        if not rows:
            raise NotFound(f"no account {account_id}")
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
        rows = await self._write(_UPDATE, values)
        if not rows:
            found, _ = await self._account_state(account_id)
            raise Conflict(f"account {account_id} is {found}, not {expected_status}")
        return to_account(rows[0])

    async def change_account_key(
        self, account_id: str, *, old_thumbprint: str, jwk: str, thumbprint: str
    ) -> Account:
        try:
            rows = await self._write(
                _CHANGE_KEY, (jwk, thumbprint, account_id, old_thumbprint)
            )
        except Conflict:
            raise Conflict(f"another account already has key thumbprint {thumbprint}") from None
        if not rows:
            found, current = await self._account_state(account_id)
            if current != old_thumbprint:
                raise Conflict(f"the key of account {account_id} changed meanwhile")
            raise Conflict(f"account {account_id} is {found}, not valid")
        return to_account(rows[0])

    async def _account_state(self, account_id: str) -> tuple[str, str]:
        """(status, thumbprint) of the account, after a compare-and-set changed nothing."""
        rows = await self._read(_STATE, (account_id,))
        if not rows:
            raise NotFound(f"no account {account_id}")
        return rows[0]["status"], rows[0]["thumbprint"]
