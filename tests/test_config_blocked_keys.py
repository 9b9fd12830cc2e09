"""[policy] blocked_keys_file: read once at load; a file that cannot be read or parsed is
a one-line configuration error naming the key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from acme_ca.config import load_config
from acme_ca.errors import ConfigError

A = hashlib.sha256(b"a").hexdigest()
B = hashlib.sha256(b"b").hexdigest()


def config_with(tmp_path: Path, blocklist: str | None, name: str = "blocked.txt") -> Path:
    if blocklist is not None:
        (tmp_path / name).write_text(blocklist)
    path = tmp_path / "acme-ca.toml"
    path.write_text(f'[policy]\nblocked_keys_file = "{name}"\n')
    return path


def test_the_blocklist_is_read_with_comments_blank_lines_and_either_case(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, f"# Debian weak keys, as SPKI SHA-256\n\n{A}\n"
                                               f"  {B.upper()}  # a comment after a hash\n"))
    assert config.policy.blocked_keys_file == tmp_path / "blocked.txt"
    assert config.policy.blocked_keys == {bytes.fromhex(A), bytes.fromhex(B)}


def test_sha256sum_output_lines_are_read(tmp_path: Path) -> None:
    """`sha256sum` prints "<hex>  <file>" (or " *<file>" in binary mode, "-" for
    standard input): such lines are taken as they are; the name is ignored."""
    config = load_config(config_with(tmp_path, f"{A}  -\n{B} *weak key #3.der\n"))
    assert config.policy.blocked_keys == {bytes.fromhex(A), bytes.fromhex(B)}


def test_no_blocklist_by_default(tmp_path: Path) -> None:
    config = load_config(None)
    assert config.policy.blocked_keys_file is None and config.policy.blocked_keys == frozenset()


@pytest.mark.parametrize(("content", "fragment"), [
    (None, "cannot read"),
    (f"{A}\nnot-a-hash\n", "line 2: 'not-a-hash' is not"),
    (f"{A} x\n", "line 1: "),  # one space and a name: not sha256sum's output
    (f"{A[:-1]}\n", "line 1: "),  # 63 hex digits
    ("\xff\n", "line 1: "),
], ids=["missing", "garbage line", "one space", "short hash", "not hex"])
def test_a_bad_blocklist_is_one_line_naming_the_key(tmp_path: Path, content: str | None,
                                                    fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_with(tmp_path, content))
    message = str(caught.value)
    assert message.startswith("policy.blocked_keys_file: "), message
    assert fragment in message and "\n" not in message, message


def test_a_blocklist_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "blocked.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"^policy\.blocked_keys_file: .*not UTF-8 text"):
        load_config(config_with(tmp_path, None))
