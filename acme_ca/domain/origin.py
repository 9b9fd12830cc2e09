"""Who is acting, for the audit log and the logs: the request (or command) in progress.

The front ends set it once per request (``api``: a request id and the client's IP; the
account once its JWS verifies, the admin once its certificate is checked) and the
command line once per command (the OS user); the authority reads it when it appends an
audit entry (``authority/audit.py``) and the JSON log formatter when it writes a line.
A ``ContextVar``: each request's task sees its own, and tasks it starts inherit it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, replace

from acme_ca.domain.audit import SYSTEM_ACTOR


@dataclass(frozen=True, slots=True)
class Origin:
    actor: str = SYSTEM_ACTOR  # domain.audit's spelling: account:ID, admin:NAME:SERIAL, cli:USER
    client_ip: str | None = None
    request_id: str | None = None
    endpoint: str | None = None  # the route's name, for logs


_NOBODY = Origin()
_CURRENT: ContextVar[Origin | None] = ContextVar("acme_ca_origin", default=None)


def current_origin() -> Origin:
    return _CURRENT.get() or _NOBODY


def set_origin(origin: Origin) -> None:
    """The origin of what the current task (and the tasks it starts) does from now on."""
    _CURRENT.set(origin)


def set_actor(actor: str) -> None:
    """The actor, once known (a verified JWS, a checked admin certificate)."""
    _CURRENT.set(replace(current_origin(), actor=actor))
