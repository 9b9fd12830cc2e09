"""The audit line of a command that changes what relying parties see (`certs revoke`,
`certs renew-early`): who ran it (the OS user, and SUDO_USER when sudo ran it), on which
configuration and data directory, and what it changed, at WARNING level on standard
error (logger ``acme_ca.audit``), one line, so that a wrapper, a shell history or a
journal keeps it. The store's audit log gets its own entry from the service that made
the change (``authority/audit.py``), with the actor ``cli:`` + ``who()`` that
``cli/main`` sets for every command."""

from __future__ import annotations

import logging
import os
import pwd
import sys

from acme_ca.cli.certs_view import printable
from acme_ca.config import Config

log = logging.getLogger("acme_ca.audit")


class _Stderr(logging.Handler):
    """Standard error as it is when a record is emitted (a test may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # as logging.StreamHandler: a log line never ends a command
            self.handleError(record)


_handler = _Stderr()
_handler.setFormatter(logging.Formatter("acme-ca: audit: %(message)s"))
log.addHandler(_handler)
log.propagate = False  # one line, whatever else configures logging
log.setLevel(logging.WARNING)


def who() -> str:
    """The OS user running the command, and the one sudo ran it for."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (a container)
        user = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {printable(sudo)})" if sudo else user


def audit(config: Config, what: str) -> None:
    """Log ``what`` (already made printable) with who did it and on which CA."""
    source = "built-in defaults" if config.source is None else str(config.source)
    log.warning("%s; by %s; config %s, data dir %s", what, who(), printable(source),
                printable(str(config.server.data_dir)))
