"""The error types of acme-ca, in one place.

    AcmeCaError            base: its message is one line a user can act on
    ├── ConfigError        a configuration file or flag value is wrong
    ├── PkiError           a key, certificate, CSR or hierarchy is unusable
    │   └── PinRefused     a PKCS#11 token refused the user PIN (exit status 77)
    ├── PolicyError        a name or a validity the CA is not willing to issue
    └── StoreError         the persistent store refused an operation
        ├── NotFound       the row asked for does not exist
        ├── Conflict       a compare-and-set lost, or the row already exists
        ├── CeilingReached a write would take an account past a ceiling it was given
        ├── LimitReached   a write's rate-limit spend does not fit its bucket
        └── StoreUnavailable  the database cannot be reached now; retry later

The command line prints ``str(error)`` and exits with its ``exit_status`` (1, or
77 for PinRefused: systemd must not restart a service into a token that locks after
a few wrong PINs, docs/acme-ca.service's RestartPreventExitStatus=); the ACME front end
maps these onto RFC 7807 problem documents in one place. None of them carries
anything HTTP.
"""

from __future__ import annotations

from datetime import datetime

PIN_REFUSED_STATUS = 77  # EX_NOPERM of sysexits.h; documented in docs/operations.md


class AcmeCaError(Exception):
    """Base of every error acme-ca raises on purpose."""

    exit_status = 1  # what `acme-ca` exits with when this error ends a command


class ConfigError(AcmeCaError):
    """A configuration value is wrong; the message names the key."""


class PkiError(AcmeCaError):
    """A key, certificate, CSR or CA hierarchy cannot be used."""


class PinRefused(PkiError):
    """The token refused the user PIN (wrong, locked, expired, never set). Trying again
    is what locks a token: the command exits with its own status, which the systemd
    unit does not restart."""

    exit_status = PIN_REFUSED_STATUS


class PolicyError(AcmeCaError):
    """The CA is not willing to issue for this name or validity."""


class StoreError(AcmeCaError):
    """The persistent store refused an operation."""


class NotFound(StoreError):
    """The row asked for does not exist."""


class Conflict(StoreError):
    """The row already exists, or it changed since it was read."""


class AlreadyReplaced(Conflict):
    """The order names in "replaces" a certificate that another order, not invalid,
    already replaces, or that a valid order replaced (RFC 9773 5): nothing was written."""


class CeilingReached(StoreError):
    """The write would take the account past a ceiling it was given (pending
    authorizations at once): nothing was written. ``pending``: how many there are,
    ``first_expires``: when the first of them expires (None: none)."""

    def __init__(self, message: str, pending: int, first_expires: datetime | None) -> None:
        super().__init__(message)
        self.pending = pending
        self.first_expires = first_expires


class LimitReached(StoreError):
    """The spend a write carried (``domain.limits.Spend``) does not fit its bucket:
    nothing was written. ``retry_at``: when it would fit; ``resets_at``: when the
    bucket is full again (``domain.limits.LimitDecision``'s)."""

    def __init__(self, message: str, retry_at: datetime, resets_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at
        self.resets_at = resets_at


class StoreUnavailable(StoreError):
    """The database cannot be reached now (down, restarting, connection lost; SQLite's
    lock held by another process past the busy timeout): the operation did not happen,
    or its outcome is unknown; retry later."""
