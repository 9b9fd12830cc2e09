"""External Account Binding keys in SQLite (``EabStore``, RFC 8555 7.3.4), and the
binding of a key by ``create_account``.

A key is read with the account that bound it (``accounts.eab_kid``), so ``account_id``
is never stored twice. Writes are serialised (``base``): the binding reads the key in
the transaction that inserts the account, so of two accounts racing for one key the
second finds it bound (``guards.eab_key_refused``); the unique index on
``accounts.eab_kid`` would refuse it anyway.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from acme_ca.domain.models import EabKey
from acme_ca.errors import Conflict, StoreError
from acme_ca.store import guards
from acme_ca.store.sqlite.base import SqliteBase, from_text, optional_text, optional_time
from acme_ca.store.sqlite.base import to_text as text
from acme_ca.store.sqlite.connection import Connection

_ACCOUNT = "(SELECT id FROM accounts WHERE accounts.eab_kid = eab_keys.kid) AS account_id"
_COLUMNS = f"eab_keys.*, {_ACCOUNT}"
_INSERT = """
INSERT INTO eab_keys (kid, label, hmac_key, profiles, domains, limits, created_at, expires)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""
_BY_KID = f"SELECT {_COLUMNS} FROM eab_keys WHERE kid = ?"  # noqa: S608 - constants
_ALL = f"SELECT {_COLUMNS} FROM eab_keys ORDER BY created_at, kid"  # noqa: S608
_REVOKE = f"""
UPDATE eab_keys SET revoked_at = ? WHERE kid = ? AND revoked_at IS NULL
RETURNING *, {_ACCOUNT}"""  # noqa: S608


def to_eab_key(row: sqlite3.Row) -> EabKey:
    return EabKey(
        kid=row["kid"],
        label=row["label"],
        hmac_key=bytes(row["hmac_key"]),
        created_at=from_text(row["created_at"]),
        profiles=tuple(json.loads(row["profiles"])),
        domains=tuple(json.loads(row["domains"])),
        limits=tuple(sorted(json.loads(row["limits"]).items())),
        expires=optional_time(row["expires"]),
        revoked_at=optional_time(row["revoked_at"]),
        account_id=row["account_id"],
    )


async def binding_refused(conn: Connection, kid: str, at: datetime) -> StoreError | None:
    """Inside the transaction that creates an account: why it may not bind ``kid``."""
    rows = list(await conn.execute_fetchall(_BY_KID, (kid,)))
    return guards.eab_key_refused(kid, to_eab_key(rows[0]) if rows else None, at)


class EabMethods(SqliteBase):
    async def create_eab_key(self, key: EabKey) -> EabKey:
        if key.account_id is not None or key.revoked_at is not None:
            raise ValueError("a new external account key is neither bound nor revoked")
        values = (key.kid, key.label, key.hmac_key, json.dumps(list(key.profiles)),
                  json.dumps(list(key.domains)), json.dumps(dict(key.limits)),
                  text(key.created_at), optional_text(key.expires))
        try:
            await self._write(_INSERT, values)
        except Conflict:
            raise Conflict(f"an external account key {key.kid} already exists") from None
        return await self.get_eab_key(key.kid)

    async def get_eab_key(self, kid: str) -> EabKey:
        rows = await self._read(_BY_KID, (kid,))
        if not rows:
            raise guards.not_found("eab key", kid)
        return to_eab_key(rows[0])

    async def list_eab_keys(self) -> list[EabKey]:
        return [to_eab_key(row) for row in await self._read(_ALL)]

    async def revoke_eab_key(self, kid: str, revoked_at: datetime) -> EabKey:
        rows = await self._write(_REVOKE, (text(revoked_at), kid))
        if rows:
            return to_eab_key(rows[0])
        await self.get_eab_key(kid)  # NotFound
        raise Conflict(f"external account key {kid} is already revoked")
