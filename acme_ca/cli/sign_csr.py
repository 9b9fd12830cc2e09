"""`acme-ca sign-csr`: manual issuance for hosts that cannot run an ACME client."""

from __future__ import annotations

import argparse
import asyncio
import sys
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from acme_ca.authority import issuance
from acme_ca.authority.identifiers import check_identifiers
from acme_ca.cli.secrets import intermediate_passphrase
from acme_ca.clock import SystemClock
from acme_ca.config import Config, format_duration, parse_duration
from acme_ca.domain.models import Identifier
from acme_ca.errors import ConfigError
from acme_ca.pki import files
from acme_ca.pki.csr import load_csr, read_csr
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import LeafProfile, LeafRequest
from acme_ca.store import open_store


def add_parser(commands: Any) -> None:
    sign = commands.add_parser(
        "sign-csr",
        help="sign a CSR by hand (for hosts without an ACME client)",
        description="Sign a PEM or DER CSR with the intermediate. SANs come from the CSR; a "
        "CSR with only a common name gets it as its SAN. The names pass the policy ACME "
        "applies ([policy] allowed_domains, denied_domains, allowed_ip_networks and the "
        "intermediate's name constraints), the key the same weak-key checks.",
    )
    sign.add_argument("csr", type=Path, help="the CSR file ('-' for standard input)")
    sign.add_argument(
        "--profile",
        choices=[p.value for p in LeafProfile],
        default="server",
        help="extended key usage: server (TLS server), client (mTLS client), "
        "or both (default: server)",
    )
    sign.add_argument(
        "--validity",
        default=None,
        help="e.g. 30d or 24h (default [policy] default_validity, at most [policy] max_validity)",
    )
    sign.add_argument(
        "--out", type=Path, default=None, help="write here (mode 0644) instead of standard output"
    )
    sign.add_argument(
        "--full-chain", action="store_true", help="write the leaf followed by the intermediate"
    )
    sign.set_defaults(run=run_sign_csr)


def run_sign_csr(config: Config, args: argparse.Namespace) -> int:
    clock = SystemClock()
    data = sys.stdin.buffer.read() if str(args.csr) == "-" else files.read_bytes(args.csr, "CSR")
    contents = read_csr(load_csr(data, allow_pem=True), blocked_keys=config.policy.blocked_keys)
    try:
        validity = (
            parse_duration(args.validity) if args.validity else config.policy.default_validity
        )
    except ValueError as exc:
        raise ConfigError(f"--validity: {exc}") from None
    now = clock.now()
    issuer = Issuer.load(
        config.ca.intermediate_cert,
        config.ca.intermediate_key,
        config.ca.chain,
        intermediate_passphrase(config.ca.intermediate_key_passphrase_file),
        now,
    )
    asked = [Identifier("dns", n) for n in contents.dns_names]
    asked += [Identifier("ip", str(a)) for a in contents.ip_addresses]
    checked = check_identifiers(asked, config.policy, intermediate=issuer.certificate)
    dns_names = tuple(i.value for i in checked if i.type == "dns")
    ip_addresses = tuple(ip_address(i.value) for i in checked if i.type == "ip")
    not_before, not_after = issuance.certificate_window(
        None, None, now, config.policy, issuer.certificate.not_valid_after_utc, validity=validity)
    names = tuple(i.value for i in checked)
    request = LeafRequest(
        public_key=contents.public_key,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        not_before=not_before,
        not_after=not_after,
        profile=LeafProfile(args.profile),
        common_name=contents.common_name if contents.common_name in names else None,
    )
    certificate = asyncio.run(_issue(config, issuer, request, now))
    output = issuer.chain_pem(certificate) if args.full_chain else files.pem(certificate)
    if args.out is None:
        sys.stdout.buffer.write(output)
    else:
        files.write_file(args.out, output, mode=files.PUBLIC_FILE)
        print(
            f"Signed {', '.join(names)} ({args.profile}, serial "
            f"{format(certificate.serial_number, 'x')}, valid until "
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, "
            f"{format_duration(validity)}): {args.out}",
            file=sys.stderr,
        )
    return 0


async def _issue(config: Config, issuer: Issuer, request: LeafRequest, now: Any) -> Any:
    store = await open_store(config.storage.url, pool_size=config.storage.pool_size)
    try:
        return await issuance.issue(store, issuer, request, now)
    finally:
        await store.close()
