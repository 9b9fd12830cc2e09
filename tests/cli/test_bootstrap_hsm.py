"""The first start of `serve` with [ca] intermediate_key on a token that cannot be used
(cli/ca_init.py ``bootstrap``): nothing is left behind, so the next start, with
the token put right, makes the CA instead of refusing over a file of the failed one."""

from __future__ import annotations

from pathlib import Path

import pytest

from acme_ca.cli.ca_init import bootstrap
from acme_ca.config import load_config
from acme_ca.errors import PkiError
from tests.cli.hsm import token_config
from tests.softhsm import SoftHsm


def test_a_bootstrap_on_an_unusable_token_leaves_nothing(
        tmp_path: Path, softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    """The PIN is wrong at the first start (no $ACME_CA_ROOT_PASSPHRASE: a root
    passphrase is generated and written beside the root key): the start fails with
    the token's error, and no file remains; with the right PIN the next start works."""
    monkeypatch.delenv("ACME_CA_ROOT_PASSPHRASE", raising=False)
    softhsm.pin_file.write_text("9999\n")
    config = load_config(token_config(tmp_path, softhsm))
    with pytest.raises(PkiError, match="wrong PIN"):
        bootstrap(config)
    data = tmp_path / "acme-ca-data"
    assert [p for p in data.rglob("*") if p.is_file()] == []
    softhsm.pin_file.write_text(softhsm.pin + "\n")
    bootstrap(config)
    assert (data / "offline" / "root-ca.passphrase").is_file()
