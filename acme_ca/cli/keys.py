"""`acme-ca keys hash`: the line that puts a key on the blocklist ([policy]
blocked_keys_file) whatever file holds it and however the file encodes it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from acme_ca.config import Config
from acme_ca.pki import files
from acme_ca.pki.goodkey import key_hash
from acme_ca.pki.keys import describe_key, public_key_in


def add_parser(commands: Any) -> None:
    keys = commands.add_parser(
        "keys", help="key tools: hash (a line for [policy] blocked_keys_file)",
        description="Key tools.")
    tools = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    hash_ = tools.add_parser(
        "hash",
        help="print the blocklist line of each key",
        description="Print, for each file, the line that puts its key on the blocklist "
        "of known-compromised keys ([policy] blocked_keys_file): the SHA-256 of the "
        "key's canonical DER SubjectPublicKeyInfo in hex (rsaEncryption for any RSA "
        "key, RSA-PSS included; an EC point uncompressed), then a comment. A file may "
        "be a public key, an unencrypted private key, a certificate or a CSR, PEM or "
        "DER. Append the output to the file: acme-ca keys hash k.pem >> blocked-keys.txt",
    )
    hash_.add_argument("files", nargs="+", type=Path, metavar="FILE",
                       help="a file holding the key ('-' for standard input)")
    hash_.set_defaults(run=run_keys_hash)


def run_keys_hash(config: Config, args: argparse.Namespace) -> int:
    lines = []
    for path in args.files:  # every file read before any line is printed
        stdin = str(path) == "-"
        data = sys.stdin.buffer.read() if stdin else files.read_bytes(path, "key file")
        key = public_key_in(data, "standard input" if stdin else str(path))
        lines.append(f"{key_hash(key).hex()}  # {describe_key(key)}, {path}\n")
    sys.stdout.write("".join(lines))
    return 0
