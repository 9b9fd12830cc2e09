"""`acme-ca eab create | list | revoke` (RFC 8555 7.3.4): the key id and base64url HMAC
key printed once, never listed; grants checked against the configuration; one-line
errors and a non-zero exit for every mistake."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca.config import load_config
from acme_ca.domain.models import EabKey
from acme_ca.encoding import b64url_decode
from acme_ca.store import open_store
from tests.cli.conftest import Run, assert_one_line_error, create_database


@pytest.fixture(autouse=True)
def database(tmp_path: Path) -> None:
    """The default data directory's database, as `acme-ca serve` leaves it (`eab`
    refuses a missing one: a mistyped --data-dir would otherwise make a new one)."""
    create_database(load_config(None, {"server.data_dir": str(tmp_path / "acme-ca-data")}))


def stored(tmp_path: Path, kid: str) -> EabKey:
    """The key as the store holds it (the default data directory, in tmp_path)."""

    async def read() -> EabKey:
        config = load_config(None, {"server.data_dir": str(tmp_path / "acme-ca-data")})
        store = await open_store(config.storage.url)
        try:
            return await store.get_eab_key(kid)
        finally:
            await store.close()
    return asyncio.run(read())


def test_create_prints_the_key_once_and_stores_its_grants(run: Run, tmp_path: Path) -> None:
    code, out, err = run("eab", "create", "--label", "team blue", "--profiles", "server,client",
                         "--domains", "Team.BlueRobin.local", "--expires", "30d",
                         "--limit", "new_orders_per_account=50/1h",
                         "--limit", "pending_authorizations_per_account=20", "--json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert set(shown) == {"kid", "hmac_key"}
    key = stored(tmp_path, shown["kid"])
    assert b64url_decode(shown["hmac_key"]) == key.hmac_key and len(key.hmac_key) == 32
    assert (key.label, key.profiles, key.domains) == (
        "team blue", ("server", "client"), ("team.bluerobin.local",))
    assert dict(key.limits) == {"new_orders_per_account": "50/1h",
                                "pending_authorizations_per_account": "20"}
    assert key.expires is not None and key.expires - key.created_at == timedelta(days=30)


def test_create_for_a_person_and_list_never_shows_the_hmac_key(run: Run) -> None:
    code, out, _ = run("eab", "create", "--label", "team red")
    assert code == 0
    kid = out.split("kid:", 1)[1].split()[0]
    hmac_key = out.split("hmac key:", 1)[1].split()[0]
    code, listed, _ = run("eab", "list")
    assert code == 0 and kid in listed and "unused" in listed and hmac_key not in listed
    code, listed_json, _ = run("eab", "list", "--json")
    assert code == 0 and hmac_key not in listed_json
    (entry,) = json.loads(listed_json)
    assert (entry["kid"], entry["state"], entry["account_id"]) == (kid, "unused", None)
    assert "hmac_key" not in entry


def test_revoke(run: Run) -> None:
    _, out, _ = run("eab", "create", "--label", "team red", "--json")
    kid = json.loads(out)["kid"]
    code, out, err = run("eab", "revoke", kid)
    assert code == 0 and "Revoked" in out and kid in out
    _, listed, _ = run("eab", "list", "--json")
    assert json.loads(listed)[0]["state"] == "revoked"
    code, _, err = run("eab", "revoke", kid)
    assert_one_line_error(code, err, "already revoked")
    code, _, err = run("eab", "revoke", "no-such-kid")
    assert_one_line_error(code, err, "no external account key no-such-kid")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--profiles", "server,nope"], "'nope' is not a profile in use"),
    (["--domains", "example.com"], "example.com is outside [policy] allowed_domains"),
    (["--domains", "*.bluerobin.local"], "not a domain suffix"),
    (["--limit", "nope=1/1h"], "unknown limit 'nope'"),
    (["--limit", "new_orders_per_account=many"], "COUNT/DURATION"),
    (["--limit", "new_orders_per_account"], "NAME=VALUE"),
    (["--limit", "pending_authorizations_per_account=0"], "a count from 1"),
    (["--label", "  "], "the label must not be empty"),
])
def test_create_refuses_what_the_ca_would_not_grant(run: Run, args: list[str],
                                                    fragment: str) -> None:
    code, out, err = run("eab", "create", "--label", "team", *args)
    assert_one_line_error(code, err, fragment)
    assert out == ""
    _, listed, _ = run("eab", "list", "--json")
    assert json.loads(listed) == []


def test_a_key_file_that_cannot_be_written_names_the_key_to_revoke(run: Run,
                                                                   tmp_path: Path) -> None:
    """--output that fails after the key is stored (here its directory is a file): one
    line naming the key, which exists, so that the operator revokes it."""
    not_a_directory = tmp_path / "plain-file"
    not_a_directory.write_text("", encoding="utf-8")
    code, _, err = run("eab", "create", "--label", "team",
                       "--output", str(not_a_directory / "team.json"))
    assert_one_line_error(code, err, "revoke it")
    _, listed, _ = run("eab", "list", "--json")
    [made] = json.loads(listed)
    assert made["kid"] in err


@pytest.mark.parametrize("option", ["--profiles", "--domains"])
def test_an_empty_list_is_a_usage_error(run: Run, option: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A list flag with no name in it is argparse's usage error (exit 2), before any key."""
    with pytest.raises(SystemExit) as caught:
        run("eab", "create", "--label", "team", option, ", ,")
    assert caught.value.code == 2
    assert "is not a comma-separated list" in capsys.readouterr().err
    _, listed, _ = run("eab", "list", "--json")
    assert json.loads(listed) == []


def test_create_writes_the_key_to_a_file_only_its_owner_reads(run: Run, tmp_path: Path
                                                             ) -> None:
    """--output FILE: the HMAC key (RFC 8555 7.3.4, a shared secret) in a file of mode
    0600 whatever the umask, as --json prints it; never over an existing file, which
    is refused before any key is made."""
    path = tmp_path / "keys" / "team-blue.json"
    old = os.umask(0o022)
    try:
        code, out, err = run("eab", "create", "--label", "team blue", "--output", str(path))
    finally:
        os.umask(old)
    assert (code, err) == (0, "")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = json.loads(path.read_text(encoding="utf-8"))
    assert set(written) == {"kid", "hmac_key"} and written["hmac_key"] not in out
    assert written["kid"] in out and str(path) in out
    assert b64url_decode(written["hmac_key"]) == stored(tmp_path, written["kid"]).hmac_key
    code, out, err = run("eab", "create", "--label", "team green", "--output", str(path))
    assert_one_line_error(code, err, "already exists")
    assert json.loads(path.read_text(encoding="utf-8")) == written
    _, listed, _ = run("eab", "list", "--json")
    assert [k["label"] for k in json.loads(listed)] == ["team blue"]
