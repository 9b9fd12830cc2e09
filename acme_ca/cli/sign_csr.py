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
from acme_ca.authority.profiles import Catalog, ProfileRefused, check_key, usages
from acme_ca.cli.secrets import intermediate_passphrase
from acme_ca.cli.wiring import publication
from acme_ca.clock import SystemClock
from acme_ca.config import Config, format_duration, parse_duration
from acme_ca.domain.models import Identifier
from acme_ca.errors import ConfigError
from acme_ca.pki import files
from acme_ca.pki.csr import load_csr, read_csr
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.profiles import LeafRequest
from acme_ca.store import open_store


def add_parser(commands: Any) -> None:
    sign = commands.add_parser(
        "sign-csr",
        help="sign a CSR by hand (for hosts without an ACME client)",
        description="Sign a PEM or DER CSR with the intermediate. SANs come from the CSR; a "
        "CSR with only a common name gets it as its SAN. The names pass the policy ACME "
        "applies ([policy] allowed_domains, denied_domains, allowed_ip_networks, the "
        "intermediate's name constraints and the profile's identifier types and domains), "
        "the key the same weak-key checks and the profile's key types.",
    )
    sign.add_argument("csr", type=Path, help="the CSR file ('-' for standard input)")
    sign.add_argument(
        "--profile",
        default=None,
        help="a profile of the configuration ([profiles.NAME]; default: [acme] "
        "default_profile, server unless set): server (TLS server), client (mTLS client), "
        "mtls (both; 'both' is read as mtls) or one of yours",
    )
    sign.add_argument(
        "--validity",
        default=None,
        help="e.g. 30d or 24h (default: the profile's default_validity, at most its "
        "max_validity)",
    )
    sign.add_argument(
        "--out", type=Path, default=None, help="write here (mode 0644) instead of standard output"
    )
    sign.add_argument(
        "--full-chain", action="store_true", help="write the leaf followed by the intermediate"
    )
    sign.set_defaults(run=run_sign_csr)


# What --profile mtls was called before profiles were configurable, kept for the scripts
# that name it (the README showed `--profile both`); a profile named "both" wins.
OLD_NAMES = {"both": "mtls"}


def run_sign_csr(config: Config, args: argparse.Namespace) -> int:
    clock = SystemClock()
    catalog = Catalog.from_config(config)
    name = catalog.default if args.profile is None else args.profile
    if name not in catalog.profiles:
        name = OLD_NAMES.get(name, name)
    try:
        profile = catalog.in_use(name)
    except ProfileRefused as exc:
        raise ConfigError(f"--profile: {exc}") from None
    data = sys.stdin.buffer.read() if str(args.csr) == "-" else files.read_bytes(args.csr, "CSR")
    contents = read_csr(load_csr(data, allow_pem=True), blocked_keys=config.policy.blocked_keys)
    check_key(profile, contents.public_key)
    try:
        validity = (
            parse_duration(args.validity) if args.validity else profile.default_validity
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
        publication=publication(config),  # its CRL and issuer URLs, as ACME leaves carry
        pkcs11_module=config.ca.pkcs11_module,
    )
    asked = [Identifier("dns", n) for n in contents.dns_names]
    asked += [Identifier("ip", str(a)) for a in contents.ip_addresses]
    checked = check_identifiers(asked, config.policy, intermediate=issuer.certificate,
                                profile=profile)
    dns_names = tuple(i.value for i in checked if i.type == "dns")
    ip_addresses = tuple(ip_address(i.value) for i in checked if i.type == "ip")
    not_before, not_after = issuance.certificate_window(
        None, None, now, config.policy, issuer.certificate.not_valid_after_utc,
        validity=validity, profile=profile)
    names = tuple(i.value for i in checked)
    request = LeafRequest(
        public_key=contents.public_key,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        not_before=not_before,
        not_after=not_after,
        extended_key_usages=usages(profile),
        common_name=contents.common_name if contents.common_name in names else None,
    )
    certificate = asyncio.run(_issue(config, issuer, request, now, profile.name))
    output = issuer.chain_pem(certificate) if args.full_chain else files.pem(certificate)
    if args.out is None:
        sys.stdout.buffer.write(output)
    else:
        files.write_file(args.out, output, mode=files.PUBLIC_FILE)
        print(
            f"Signed {', '.join(names)} ({profile.name}, serial "
            f"{format(certificate.serial_number, 'x')}, valid until "
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, "
            f"{format_duration(validity)}): {args.out}",
            file=sys.stderr,
        )
    return 0


async def _issue(config: Config, issuer: Issuer, request: LeafRequest, now: Any,
                 profile: str) -> Any:
    store = await open_store(config.storage.url, pool_size=config.storage.pool_size)
    try:
        return await issuance.issue(store, issuer, request, now, profile=profile)
    finally:
        await store.close()
