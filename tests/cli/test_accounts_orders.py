"""`acme-ca accounts list | show | deactivate` and `acme-ca orders list` (issue 13, item
5) on SQLite and PostgreSQL, over the history of ``tests/cli/history.py``: human tables
and --json, filters, one-line errors; a deactivation is a compare-and-set in the store,
recorded in the audit log with the OS user as actor (cli:USER) and on standard error,
after which the account's ACME requests are refused with 401 unauthorized (RFC 8555
7.3.6)."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
from pathlib import Path

from acme_ca.cli.main import main
from acme_ca.config import load_config
from acme_ca.domain.models import AccountStatus
from acme_ca.store import open_store
from tests.cli.conftest import Run, assert_one_line_error
from tests.protocol.conftest import AcmeServer, server, server_factory
from tests.protocol.helpers import assert_problem, registered

__all__ = ["server", "server_factory"]  # the fixtures


def rows(out: str) -> list[list[str]]:
    """A table's rows, split on runs of blanks (no cell here holds two blanks)."""
    return [line.split() for line in out.splitlines()[2:]]


def test_accounts_list(run: Run, history: Path) -> None:
    code, out, err = run("--config", history, "accounts", "list")
    assert code == 0, err
    assert out.splitlines()[0].split() == ["ID", "STATUS", "CONTACT", "CREATED", "EAB", "KID"]
    assert [(r[0], r[1], r[2], r[-1]) for r in rows(out)] == [  # newest first
        ("acct-3", "deactivated", "mailto:admin@example.test", "kid-team"),
        ("acct-2", "valid", "-", "-"),
        ("acct-1", "valid", "mailto:ops@bluerobin.local", "-")]
    code, out, _ = run("--config", history, "accounts", "list", "--status", "valid",
                       "--limit", "1", "--json")
    (account,) = json.loads(out)
    assert account["id"] == "acct-2" and account["status"] == "valid"
    assert set(account) == {"id", "status", "contact", "thumbprint", "eab_kid",
                            "terms_agreed", "created_at"}
    code, out, _ = run("--config", history, "accounts", "list", "--status", "revoked")
    assert (code, out) == (0, "No accounts.\n")
    code, _, err = run("--config", history, "accounts", "list", "--status", "gone")
    assert_one_line_error(code, err, "--status: 'gone' is not one of valid, deactivated")


def test_accounts_show(run: Run, history: Path) -> None:
    code, out, err = run("--config", history, "accounts", "show", "acct-1", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["contact"] == ["mailto:ops@bluerobin.local"]
    assert shown["thumbprint"] == "thumb-acct-1" and shown["eab_kid"] is None
    assert shown["status"] == "valid" and shown["created_at"]
    assert shown["orders"] == 2 and shown["latest_order"]["id"] == "order-b"
    assert shown["certificates"] == 3  # a1, a2 and the expired a3
    assert shown["latest_certificate"]["serial"] == "a2"
    code, out, _ = run("--config", history, "accounts", "show", "acct-3")
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert lines["eab kid"] == "kid-team" and lines["status"] == "deactivated"
    assert lines["orders"] == "0" and lines["latest certificate"] == "-"
    code, _, err = run("--config", history, "accounts", "show", "acct-9")
    assert_one_line_error(code, err, "no account has the id acct-9")


def account_status(config: Path, account_id: str) -> AccountStatus:
    async def read() -> AccountStatus:
        store = await open_store(load_config(config).storage.url)
        try:
            return (await store.get_account(account_id)).status
        finally:
            await store.close()

    return asyncio.run(read())


def test_deactivate_is_audited_and_happens_once(run: Run, history: Path) -> None:
    code, out, err = run("--config", history, "accounts", "deactivate", "acct-1", "--dry-run")
    assert (code, err) == (0, "") and out.startswith("Would deactivate the account acct-1")
    assert account_status(history, "acct-1") is AccountStatus.VALID

    code, out, err = run("--config", history, "accounts", "deactivate", "acct-1")
    assert code == 0 and out.startswith("Deactivated the account acct-1 "
                                        "(mailto:ops@bluerobin.local)")
    assert err.startswith("acme-ca: audit: deactivated the account acct-1 "
                          f"(mailto:ops@bluerobin.local); by {getpass.getuser()};")
    assert account_status(history, "acct-1") is AccountStatus.DEACTIVATED
    code, out, _ = run("--config", history, "audit", "list", "--json")
    (entry,) = json.loads(out)
    assert entry["action"] == "account.deactivated"
    assert entry["actor"] == f"cli:{getpass.getuser()}"
    assert entry["details"] == {"account": "acct-1", "by": "operator"}

    code, _, err = run("--config", history, "accounts", "deactivate", "acct-1")
    assert_one_line_error(code, err, "the account acct-1 is deactivated already")
    code, _, err = run("--config", history, "accounts", "deactivate", "acct-9")
    assert_one_line_error(code, err, "no account has the id acct-9")
    code, out, _ = run("--config", history, "audit", "list", "--json")
    assert len(json.loads(out)) == 1  # a refusal records nothing


async def test_a_deactivated_account_is_refused_over_acme(server: AcmeServer,
                                                          tmp_path: Path) -> None:
    """RFC 8555 7.3.6: once the operator deactivated it, every request the account
    signs gets 401 unauthorized, as after the client's own deactivation."""
    client = await registered(server)
    assert (await client.post(client.kid)).status == 200
    account_id = client.kid.rsplit("/", 1)[1]
    config = tmp_path / "operator.toml"
    config.write_text(f'[storage]\nurl = "{server.config.storage.url}"\n')
    code = await asyncio.to_thread(main, ["--config", str(config), "accounts",
                                          "deactivate", account_id])
    assert code == 0
    assert_problem(await client.post(client.kid), 401, "unauthorized")
    assert_problem(await client.new_order("web.bluerobin.local"), 401, "unauthorized")


def test_orders_list(run: Run, history: Path) -> None:
    code, out, err = run("--config", history, "orders", "list")
    assert code == 0, err
    assert out.splitlines()[0].split()[:3] == ["ID", "ACCOUNT", "STATUS"]
    assert [(r[0], r[1], r[2], r[-1]) for r in rows(out)] == [  # newest first
        ("order-c", "acct-2", "invalid", "-"),
        ("order-b", "acct-1", "pending", "-"),
        ("order-a", "acct-1", "valid", "a1")]
    code, out, _ = run("--config", history, "orders", "list", "--account", "acct-1",
                       "--status", "valid", "--json")
    (order,) = json.loads(out)
    assert order["id"] == "order-a" and order["certificate_serial"] == "a1"
    assert order["identifiers"] == [{"type": "dns", "value": "order-a.bluerobin.local"}]
    code, out, _ = run("--config", history, "orders", "list", "--limit", "1", "--json")
    assert [o["id"] for o in json.loads(out)] == ["order-c"]
    code, out, _ = run("--config", history, "orders", "list", "--account", "acct-3")
    assert (code, out) == (0, "No orders.\n")
    code, _, err = run("--config", history, "orders", "list", "--status", "done")
    assert_one_line_error(code, err, "--status: 'done' is not one of pending, ready")
