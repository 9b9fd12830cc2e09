"""External Account Binding keys in PostgreSQL (``EabStore``, RFC 8555 7.3.4), and the
binding of a key by ``create_account``.

A key is read with the account that bound it (``accounts.eab_kid``), so ``account_id``
is never stored twice. ``create_account`` locks the key's row (``FOR UPDATE``) in the
transaction that inserts the account, then reads whether an account bound it in a
later statement, which sees everything committed before the lock was granted: of two
accounts racing for one key, the second waits for the first to commit and finds the
key bound (``guards.eab_key_refused``). The unique index on ``accounts.eab_kid``
would refuse it anyway.
"""

from __future__ import annotations

import json
from datetime import datetime

from acme_ca.domain.models import EabKey
from acme_ca.errors import Conflict, StoreError
from acme_ca.store import guards
from acme_ca.store.postgres.base import Connection, PostgresBase, Record, aware, optional_aware

_COLUMNS = """eab_keys.*, (SELECT id FROM accounts WHERE accounts.eab_kid = eab_keys.kid)
    AS account_id"""
_INSERT = """
INSERT INTO eab_keys (kid, label, hmac_key, profiles, domains, limits, created_at, expires)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)"""
_BY_KID = f"SELECT {_COLUMNS} FROM eab_keys WHERE kid = $1"  # noqa: S608 - constants
_ALL = f"SELECT {_COLUMNS} FROM eab_keys ORDER BY created_at, kid"  # noqa: S608
_REVOKE = f"""
UPDATE eab_keys SET revoked_at = $2 WHERE kid = $1 AND revoked_at IS NULL
RETURNING {_COLUMNS}"""  # noqa: S608
_LOCK = "SELECT kid FROM eab_keys WHERE kid = $1 FOR UPDATE"


def to_eab_key(row: Record) -> EabKey:
    return EabKey(
        kid=row["kid"],
        label=row["label"],
        hmac_key=bytes(row["hmac_key"]),
        created_at=row["created_at"],
        profiles=tuple(row["profiles"]),
        domains=tuple(row["domains"]),
        limits=tuple(sorted(json.loads(row["limits"]).items())),
        expires=row["expires"],
        revoked_at=row["revoked_at"],
        account_id=row["account_id"],
    )


async def binding_refused(conn: Connection, kid: str, at: datetime) -> StoreError | None:
    """Inside the transaction that creates an account: lock the key ``kid``, then say
    why the account may not bind it."""
    if "\x00" in kid:  # no row can hold it (base._lookup)
        return guards.not_found("eab key", kid)
    await conn.fetch(_LOCK, kid)
    rows = await conn.fetch(_BY_KID, kid)
    return guards.eab_key_refused(kid, to_eab_key(rows[0]) if rows else None, at)


class EabMethods(PostgresBase):
    async def create_eab_key(self, key: EabKey) -> EabKey:
        if key.account_id is not None or key.revoked_at is not None:
            raise ValueError("a new external account key is neither bound nor revoked")
        try:
            await self._write(_INSERT, key.kid, key.label, key.hmac_key, list(key.profiles),
                              list(key.domains), json.dumps(dict(key.limits)),
                              aware(key.created_at), optional_aware(key.expires))
        except Conflict:
            raise Conflict(f"an external account key {key.kid} already exists") from None
        return await self.get_eab_key(key.kid)

    async def get_eab_key(self, kid: str) -> EabKey:
        rows = await self._lookup(_BY_KID, kid)
        if not rows:
            raise guards.not_found("eab key", kid)
        return to_eab_key(rows[0])

    async def list_eab_keys(self) -> list[EabKey]:
        return [to_eab_key(row) for row in await self._read(_ALL)]

    async def revoke_eab_key(self, kid: str, revoked_at: datetime) -> EabKey:
        if "\x00" in kid:
            raise guards.not_found("eab key", kid)
        rows = await self._write(_REVOKE, kid, aware(revoked_at))
        if rows:
            return to_eab_key(rows[0])
        await self.get_eab_key(kid)  # NotFound
        raise Conflict(f"external account key {kid} is already revoked")
