"""`acme-ca audit verify | list | export` (issue 13, item 4) on SQLite and PostgreSQL.

`verify` must find what someone with write access to the database does behind the
CA's back, done here as they would do it, with the sqlite3 and psql programs: an
edited entry, an edited entry whose own hash was recomputed, a deleted entry in the
middle, and deleted newest entries (which only `--expect-head` can tell). Exit status 0
when intact, 3 when broken, with one line naming the first bad entry. `export` writes
JSON Lines that `verify --file` checks offline, finding the same tampering in the
file."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acme_ca.cli.audit_commands import CHAIN_BROKEN
from acme_ca.config import load_config
from acme_ca.domain.audit import AuditAction, AuditEvent, chain_hash
from acme_ca.store import open_store, sqlite_file
from tests.cli.conftest import Run, assert_one_line_error, storage_config
from tests.required import require_program

ENTRIES = 5
SQL = Callable[[str], str]  # runs SQL on the database, as its program prints the result


@pytest.fixture
def backend(database: Path) -> tuple[Path, SQL]:
    """A configuration whose database holds ENTRIES audit entries, and a way to run SQL
    on that database with its own command-line program (sqlite3, psql), its audit_log
    triggers dropped."""
    url = load_config(database).storage.url
    asyncio.run(append_entries(url))
    path = sqlite_file(url)
    if path is not None:
        command = [require_program("sqlite3"), str(path)]
    else:
        command = [require_program("psql"), "--no-psqlrc", "-qAt", "-v", "ON_ERROR_STOP=1",
                   url]

    def sql(statement: str) -> str:
        return subprocess.run(command, input=statement + ";\n", capture_output=True,
                              text=True, timeout=60, check=True).stdout

    # audit_log refuses UPDATE and DELETE (migration 0010's triggers): whoever edits it
    # drops them first, as someone with DDL rights on the database would.
    if path is not None:
        sql("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete")
    else:
        sql("DROP TRIGGER audit_log_append_only ON audit_log")
    return database, sql


async def append_entries(url: str) -> None:
    store = await open_store(url)
    at = datetime.now(UTC) - timedelta(days=2)
    try:
        for n in range(1, ENTRIES + 1):
            await store.append_audit(AuditEvent(
                AuditAction.CERTIFICATE_ISSUED, f"account:acct-{n}", "192.0.2.7",
                (f"host{n}.bluerobin.local",), f"{n:x}a", {"profile": "server"}),
                at + timedelta(hours=n))
    finally:
        await store.close()


def verify(run: Run, config: Path, *extra: object) -> tuple[int, str]:
    code, out, err = run("--config", config, "audit", "verify", *extra)
    assert err == "" and out.count("\n") == 1, (out, err)
    return code, out


def head_of(run: Run, config: Path) -> str:
    code, out = verify(run, config)
    found = re.fullmatch(rf"{ENTRIES} entries, chain intact, head {ENTRIES} ([0-9a-f]{{64}})\n",
                         out)
    assert code == 0 and found, out
    return f"{ENTRIES}:{found.group(1)}"


def test_an_intact_log_verifies_with_its_head(run: Run, backend: tuple[Path, SQL]) -> None:
    config, _ = backend
    head = head_of(run, config)
    assert verify(run, config, "--expect-head", head)[0] == 0
    code, out, _ = run("--config", config, "audit", "verify", "--json")
    assert code == 0 and json.loads(out) == {
        "intact": True, "entries": ENTRIES, "first_bad": None,
        "head": {"seq": ENTRIES, "hash": head.split(":")[1]}}


def test_an_edited_entry_is_found(run: Run, backend: tuple[Path, SQL]) -> None:
    config, sql = backend
    sql("UPDATE audit_log SET actor = 'account:mallory' WHERE seq = 3")
    code, out = verify(run, config)
    assert code == CHAIN_BROKEN
    assert out == ("Chain broken at entry 3: entry 3 was edited: its hash does not match "
                   "its content (2 entries before it verify)\n")


def test_an_edited_entry_with_its_hash_recomputed_is_found(run: Run,
                                                           backend: tuple[Path, SQL]) -> None:
    """Whoever also recomputes the edited entry's hash breaks the link of the next."""
    config, sql = backend
    code, out, _ = run("--config", config, "audit", "list", "--json")
    third = json.loads(out)[2]
    event = AuditEvent(AuditAction(third["action"]), "account:mallory", third["client_ip"],
                       tuple(third["identifiers"]), third["serial"], third["details"])
    at = datetime.fromisoformat(third["at"].replace("Z", "+00:00"))
    forged = chain_hash(3, at, event, third["prev_hash"])
    sql(f"UPDATE audit_log SET actor = 'account:mallory', hash = '{forged}' "  # noqa: S608
        "WHERE seq = 3")  # (hex digits: as the forger types it)
    code, out = verify(run, config)
    assert code == CHAIN_BROKEN and out.startswith(
        "Chain broken at entry 4: entry 4 does not follow the hash of entry 3")


def test_a_deleted_entry_in_the_middle_is_found(run: Run, backend: tuple[Path, SQL]) -> None:
    config, sql = backend
    sql("DELETE FROM audit_log WHERE seq = 2")
    code, out = verify(run, config)
    assert code == CHAIN_BROKEN
    assert out == ("Chain broken at entry 3: entry 2 is missing (found 3 next) (1 entry "
                   "before it verify)\n")


def test_deleted_newest_entries_are_found_with_the_head_kept(run: Run,
                                                            backend: tuple[Path, SQL]) -> None:
    """The shorter chain verifies on its own (as the domain module says it must); the
    head printed before, passed back, tells that entries are gone; and also when new
    entries have been appended since, reusing the deleted numbers."""
    config, sql = backend
    head = head_of(run, config)
    sql(f"DELETE FROM audit_log WHERE seq >= {ENTRIES - 1:d}")  # noqa: S608 (a number)
    code, out = verify(run, config)
    assert code == 0 and out.startswith(f"{ENTRIES - 2} entries, chain intact")
    code, out = verify(run, config, "--expect-head", head)
    assert code == CHAIN_BROKEN
    assert out == (f"Chain broken at entry {ENTRIES}: entry {ENTRIES}, the head you kept, "
                   f"is missing: the log ends at entry {ENTRIES - 2}, so its newest entries "
                   f"were deleted ({ENTRIES - 2} entries before it verify)\n")

    url = load_config(config).storage.url
    asyncio.run(append_entries(url))  # seq 4 .. 8: entry 5 exists again, another one
    code, out = verify(run, config, "--expect-head", head)
    assert code == CHAIN_BROKEN and out.startswith(
        f"Chain broken at entry {ENTRIES}: entry {ENTRIES} is not the head you kept")


def test_list_since_and_by_action(run: Run, backend: tuple[Path, SQL]) -> None:
    config, _ = backend
    code, out, err = run("--config", config, "audit", "list", "--since", "24h", "--json")
    assert code == 0, err
    assert [e["seq"] for e in json.loads(out)] == []  # all appended two days ago and more
    code, out, _ = run("--config", config, "audit", "list", "--since", "46h30m", "--json")
    assert [e["seq"] for e in json.loads(out)] == [2, 3, 4, 5]  # appended 47h ago: 1
    code, out, _ = run("--config", config, "audit", "list", "--action", "account.created")
    assert (code, out) == (0, "No audit entries.\n")
    code, out, _ = run("--config", config, "audit", "list", "--limit", "2")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["SEQ", "TIME", "ACTION"] and len(lines) == 4
    assert lines[2].split()[0] == "1" and "certificate.issued" in lines[2]
    assert "account:acct-1" in lines[2] and "serial 1a, host1.bluerobin.local" in lines[2]
    since = (datetime.now(UTC) - timedelta(hours=43, minutes=30)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    code, out, _ = run("--config", config, "audit", "list", "--since", since, "--json")
    assert [e["seq"] for e in json.loads(out)] == [ENTRIES]


@pytest.mark.parametrize(("argv", "said"), [
    (["list", "--since", "yesterday"], "--since: 'yesterday' is neither a duration"),
    (["list", "--action", "certificate.stolen"], "--action: 'certificate.stolen' is not"),
    (["list", "--limit", "0"], "--limit: 0 is not a positive number"),
    (["verify", "--expect-head", "5"], "--expect-head: '5' is not SEQ:HASH"),
])
def test_bad_options_are_one_line(run: Run, tmp_path: Path, argv: list[str],
                                  said: str) -> None:
    config = storage_config(tmp_path, f"sqlite:///{tmp_path / 'ca.db'}")
    code, _, err = run("--config", config, "audit", *argv)
    assert_one_line_error(code, err, said)


def test_export_is_verified_offline(run: Run, backend: tuple[Path, SQL],
                                    tmp_path: Path) -> None:
    """JSON Lines with the hashes, 0600, never over an existing file; `verify --file`
    checks it with no database, and finds an edited or a deleted line."""
    config, _ = backend
    head = head_of(run, config)
    exported = tmp_path / "audit.jsonl"
    code, out, err = run("--config", config, "audit", "export", "--out", exported)
    assert code == 0, err
    assert out.startswith(f"Exported {ENTRIES} entries to {exported}")
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    lines = exported.read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, ENTRIES + 1))
    assert json.loads(lines[-1])["hash"] == head.split(":")[1]

    offline = tmp_path / "elsewhere.toml"  # no database at all
    offline.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "none.db"}"\n')
    code, out = verify(run, offline, "--file", exported, "--expect-head", head)
    assert code == 0 and out.endswith(f"head {head.replace(':', ' ')}\n")

    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join([*lines[:1], lines[1].replace("acct-2", "mallory"),
                                 *lines[2:]]) + "\n")
    code, out = verify(run, offline, "--file", edited)
    assert code == CHAIN_BROKEN and out.startswith("Chain broken at entry 2: entry 2 was edited")
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:-1]) + "\n")
    code, out = verify(run, offline, "--file", cut, "--expect-head", head)
    assert code == CHAIN_BROKEN and f"entry {ENTRIES}, the head you kept, is missing" in out

    code, _, err = run("--config", config, "audit", "export", "--out", exported)
    assert_one_line_error(code, err, f"{exported} exists; refusing to overwrite it")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text(lines[0] + "\n{not json\n")
    code, _, err = run("--config", offline, "audit", "verify", "--file", garbage)
    assert_one_line_error(code, err, f"{garbage}: line 2 is not an audit entry")


def test_export_to_standard_output(run: Run, backend: tuple[Path, SQL]) -> None:
    config, _ = backend
    code, out, err = run("--config", config, "audit", "export")
    assert code == 0 and err == ""
    assert [json.loads(line)["seq"] for line in out.splitlines()] == list(
        range(1, ENTRIES + 1))
