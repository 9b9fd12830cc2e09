"""The command line of `python -m bench` (bench/options.py, bench/__main__.py): what it
refuses is one line naming the flag, before any server or client starts; what
``--acme-ca-workers`` takes is what ``[server] workers`` takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import main
from bench.options import parse_args

RUN = ["run", "--directory", "https://127.0.0.1:1/directory", "--http-port", "1"]


@pytest.mark.parametrize(("argv", "said"), [
    ([*RUN, "--client", "loadgen,nope"],
     "--client: nope (one or more of loadgen, acme-lib, lego, certbot)"),
    ([*RUN, "--client", " , "], "--client: nothing (one or more of "),
    (["compare", "--client", "acme-lib,nope"], "--client: nope (one or more of "),
    ([*RUN, "--client", "lego"], "run: --client loadgen or acme-lib (lego and certbot: "),
    ([*RUN, "--client", "loadgen,acme-lib"], "run: --client loadgen or acme-lib "),
    (["compare", "--client", "loadgen,lego"], "--client: lego is not installed"),
])
def test_a_client_the_bench_cannot_run_is_one_line_before_any_server(
    argv: list[str], said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown --client (or none), a program given to `run` (it drives one server
    already running, with the bench's own http-01 responder), or a program that is not
    installed (no lego on PATH here): the exit message says so, and no work directory
    is made."""
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # lego is not on it
    workdir = tmp_path / "work"
    with pytest.raises(SystemExit) as caught:
        main([*argv, "--workdir", str(workdir)] if argv[0] == "compare" else argv)
    message = str(caught.value.code)
    assert message.startswith(said) and "\n" not in message, message
    assert not workdir.exists()


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", "", "1025"])
def test_a_bad_acme_ca_workers_is_refused_as_the_configuration_refuses_it(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--acme-ca-workers is checked by ``config_values.workers`` before any server starts
    (a typo is not a failed start of every run's acme-ca): argparse's one error line,
    naming the flag and what it takes."""
    with pytest.raises(SystemExit) as caught:
        parse_args(["compare", "--acme-ca-workers", value])
    assert caught.value.code == 2
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert "argument --acme-ca-workers: " in line and "'auto'" in line, line


@pytest.mark.parametrize(("value", "workers"), [("auto", "auto"), ("2", 2), ("1024", 1024)])
def test_acme_ca_workers_takes_a_count_or_auto(value: str, workers: int | str) -> None:
    """"auto" goes on as it is, for acme-ca to count its own cores; a count as a number."""
    assert parse_args(["compare", "--acme-ca-workers", value]).acme_ca_workers == workers
