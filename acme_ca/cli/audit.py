"""The audit line of a command that changes what relying parties see (`certs revoke`,
`certs renew-early`): who ran it (the OS user, and SUDO_USER when sudo ran it), on which
configuration and data directory, and what it changed, at WARNING level on standard
error (logger ``acme_ca.audit``), one line, so that a wrapper, a shell history or a
journal keeps it. The store's audit log gets its own entry from the service that made
the change (``authority/audit.py``), with the actor ``cli:`` + ``who()`` that
``cli/main`` sets for every command.

The store's witness line of each append (logger ``acme_ca.audit.head``, INFO,
``store/audit.witness``) is not this line: it goes to the log as configured
(``serve``'s, text or JSON), not through this logger's handler."""

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


class _ToRoot(logging.Handler):
    """Hands a record to the root logger's handlers (the log ``serve`` configures)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


_head = logging.getLogger("acme_ca.audit.head")  # under acme_ca.audit, not of it
_head.addHandler(_ToRoot())
_head.propagate = False
_head.setLevel(logging.INFO)


def who() -> str:
    """The OS user running the command, and the one sudo ran it for: SUDO_USER only when
    the command runs as root (anyone can set it otherwise). As text the audit log can
    keep: a name that is not valid Unicode (decoded with surrogateescape) has its lone
    surrogates as \\uNNNN, control characters as \\xNN (``printable``)."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (a container)
        user = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER") if os.geteuid() == 0 else None
    name = f"{user} (sudo by {sudo})" if sudo else user
    return printable(name.encode("utf-8", "backslashreplace").decode("utf-8"))


def audit(config: Config, what: str) -> None:
    """Log ``what`` (already made printable) with who did it and on which CA."""
    source = "built-in defaults" if config.source is None else str(config.source)
    log.warning("%s; by %s; config %s, data dir %s", what, who(), printable(source),
                printable(str(config.server.data_dir)))
