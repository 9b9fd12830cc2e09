"""ACME accounts in PostgreSQL (RFC 8555 7.3).

Every call is one statement (``create_account`` with an External Account Binding key
also locks and reads the key it binds, in the same transaction: ``eab``); a
compare-and-set returns the new row with ``RETURNING``. Only when it changed nothing
does a second query find out why.
"""

from __future__ import annotations

from collections.abc import Sequence

from acme_ca.domain.models import Account, AccountStatus
from acme_ca.errors import Conflict, NotFound
from acme_ca.store import guards
from acme_ca.store.postgres.base import Connection, PostgresBase, Record
from acme_ca.store.postgres.eab import binding_refused
from acme_ca.store.postgres.rows import ACCOUNT_INSERT, account_row, to_account

# ON CONFLICT DO NOTHING covers both the id and the thumbprint: no row comes back.
_CREATE = ACCOUNT_INSERT + "\nON CONFLICT DO NOTHING RETURNING *"
_BY_ID = "SELECT * FROM accounts WHERE id = $1"
_BY_THUMBPRINT = "SELECT * FROM accounts WHERE thumbprint = $1"
_UPDATE = """
UPDATE accounts SET status = COALESCE($3, status), contact = COALESCE($4, contact)
WHERE id = $1 AND status = $2
RETURNING *"""
# A thumbprint another account holds violates accounts_by_thumbprint: Conflict.
_CHANGE_KEY = """
UPDATE accounts SET jwk = $3, thumbprint = $4
WHERE id = $1 AND thumbprint = $2 AND status = 'valid'
RETURNING *"""
_STATE = "SELECT status, thumbprint FROM accounts WHERE id = $1"


class AccountMethods(PostgresBase):
    async def create_account(self, account: Account) -> Account:
        async def insert(conn: Connection) -> list[Record]:
            if account.eab_kid is not None:  # the key is locked and read where it is bound
                refused = await binding_refused(conn, account.eab_kid, account.created_at)
                if refused is not None:
                    raise refused
            return await conn.fetch(_CREATE, *account_row(account))

        if account.eab_kid is None:
            rows = await self._write(_CREATE, *account_row(account))
        else:
            rows = await self._transaction(insert)
        if not rows:
            raise Conflict(f"an account with key thumbprint {account.thumbprint} or id "
                           f"{account.id} already exists")
        return to_account(rows[0])

    async def get_account(self, account_id: str) -> Account:
        rows = await self._lookup(_BY_ID, account_id)
        if not rows:
            raise guards.not_found("account", account_id)
        return to_account(rows[0])

    async def find_account_by_thumbprint(self, thumbprint: str) -> Account:
        rows = await self._lookup(_BY_THUMBPRINT, thumbprint)
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
        args = (
            account_id,
            expected_status.value,
            None if status is None else status.value,
            None if contact is None else list(contact),
        )
        return to_account(await self._compare_and_set(
            _UPDATE, args, state=_STATE, kind="account", row_id=account_id,
            expected=expected_status.value))

    async def change_account_key(
        self, account_id: str, *, old_thumbprint: str, jwk: str, thumbprint: str
    ) -> Account:
        try:
            rows = await self._write(_CHANGE_KEY, account_id, old_thumbprint, jwk, thumbprint)
        except Conflict:
            raise Conflict(f"another account already has key thumbprint {thumbprint}") from None
        if not rows:
            found = await self._read(_STATE, account_id)
            if not found:
                raise guards.not_found("account", account_id)
            if found[0]["thumbprint"] != old_thumbprint:
                raise Conflict(f"the key of account {account_id} changed meanwhile")
            raise guards.refused("account", account_id, found[0]["status"], "valid")
        return to_account(rows[0])
