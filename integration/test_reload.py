"""SIGHUP reloads the configuration file of a running `acme-ca serve` (issue 13 item 7):
the next lego certificate follows a changed [policy] default_validity; a changed
listen address is kept with one warning line; a broken file is refused with one error
line and the server goes on serving (the running settings kept)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from integration.clients import AcmeServer, expect_ok, load_certs, write_config
from integration.conftest import free_port, serving_config, until
from integration.test_lego import Lego

pytestmark = pytest.mark.integration


def validity_of(lego: Lego) -> float:
    leaf = load_certs(lego.certificate(".crt"))[0]
    return (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() / 86400


def hup_and_wait(acme: AcmeServer, line: str) -> str:
    """SIGHUP by pid; wait for ``line`` in serve's log (once more than before)."""
    before = acme.logs().count(line)
    os.kill(acme.server.process.pid, signal.SIGHUP)
    until(lambda: acme.logs().count(line) > before, f"serve logged {line!r}")
    return acme.logs()


def test_sighup_applies_a_new_default_validity_and_survives_a_broken_file(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "acme-ca"
    workdir.mkdir()
    data_dir, port, http01_port = workdir / "data", free_port(), free_port()
    path = write_config(workdir / "acme-ca.toml", data_dir=data_dir, port=port,
                        http01_port=http01_port)
    original = path.read_text()
    path.write_text(original.replace("[policy]\n", '[policy]\ndefault_validity = "2d"\n'))
    with serving_config(path, data_dir, port) as server:
        acme = AcmeServer(server, http01_port)
        first = Lego(acme, tmp_path / "lego-1")
        expect_ok(first("run")[0], acme)
        assert validity_of(first) == 2

        path.write_text(original.replace("[policy]\n", '[policy]\ndefault_validity = "3d"\n')
                        .replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"))
        logs = hup_and_wait(acme, "reload: configuration applied")
        assert logs.count("[server] listen changed in the file") == 1, logs
        second = Lego(acme, tmp_path / "lego-2")
        expect_ok(second("run")[0], acme)  # on the running listen address
        assert validity_of(second) == 3

        path.write_text("[policy\ndefault_validity = ")
        logs = hup_and_wait(acme, "reload: the configuration does not load")
        assert server.get("/readyz").status == 200
        third = Lego(acme, tmp_path / "lego-3")
        expect_ok(third("run")[0], acme)
        assert validity_of(third) == 3
        assert server.process.poll() is None
    assert "Traceback" not in logs
