"""docs/acme-ca.service, the systemd unit of docs/operations.md (issue 13 item 7): the
directives the guide promises, an ExecStart that `acme-ca` accepts, a stop timeout
above the default [server] shutdown_timeout, and `systemd-analyze verify` (Debian's
systemd) finding nothing to say about it."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

from acme_ca.cli.main import build_parser
from acme_ca.config import ServerConfig
from acme_ca.errors import PIN_REFUSED_STATUS, PinRefused
from tests.required import require_program

UNIT = Path(__file__).resolve().parent.parent / "docs" / "acme-ca.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  (keys keep their case)
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_has_the_directives_operations_md_promises():
    service = unit()["Service"]
    assert service["Type"] in {"simple", "notify"}
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    assert service["User"] == "acme-ca"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    assert service["ReadWritePaths"] == service["WorkingDirectory"] == "/var/lib/acme-ca"
    stop = int(service["TimeoutStopSec"])
    assert stop > ServerConfig().shutdown_timeout.total_seconds() + 5
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_a_refused_pin_is_not_restarted():
    """`Restart=on-failure` restarts any non-zero exit up to StartLimitBurst times (5 in
    10 s by default), and each start tries the PIN once: with a wrong PIN that is five
    tries, enough to lock a token. `acme-ca` exits 77 for a refused PIN (errors.PinRefused,
    tests/cli/test_serve_hsm.py runs it), and the unit does not restart 77."""
    service = unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert PinRefused("x").exit_status == PIN_REFUSED_STATUS == 77
    assert service["RestartPreventExitStatus"].split() == [str(PIN_REFUSED_STATUS)]


def test_exec_start_is_a_command_line_acme_ca_accepts():
    argv = shlex.split(unit()["Service"]["ExecStart"])
    assert Path(argv[0]).name == "acme-ca"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and args.config == "/etc/acme-ca/acme-ca.toml"


def test_systemd_analyze_verify_has_nothing_to_say(tmp_path: Path):
    """Unknown keys or bad values are warnings (exit status 0) on stderr: none is
    expected. ExecStart must name a program that exists: the installed acme-ca here."""
    analyze = require_program("systemd-analyze")
    installed = Path(sys.executable).parent / "acme-ca"  # this environment's entry point
    acme_ca = str(installed) if installed.exists() else require_program("acme-ca")
    text = UNIT.read_text().replace("/usr/local/bin/acme-ca", acme_ca)
    (tmp_path / "acme-ca.service").write_text(text)
    result = subprocess.run([analyze, "verify", str(tmp_path / "acme-ca.service")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
