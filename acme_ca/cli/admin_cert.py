"""`acme-ca admin-cert`: a certificate for an operator of the admin listener.

A fresh ECDSA P-256 key and a clientAuth certificate for CN="acme-ca admin NAME"
signed by the intermediate under the reserved ``admin`` profile
(``authority/admins.py``), recorded in the store and in the audit log, written as
PKCS#12 (key, certificate and the CA chain, mode 0600) for a browser, curl or Python,
protected by a password: the first line of --password-file, else a generated one
printed once on standard output. With --pem, the key (unencrypted) and the chain in
one PEM file instead, also 0600.

`acme-ca certs revoke SERIAL` locks the operator out at once.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from acme_ca.authority.admins import ADMIN_VALIDITY, AdminCertificate, issue_admin_certificate
from acme_ca.cli.secrets import intermediate_passphrase, read_passphrase_file
from acme_ca.cli.wiring import publication
from acme_ca.clock import SystemClock
from acme_ca.config import Config, format_duration, parse_duration
from acme_ca.domain.models import serial_hex
from acme_ca.errors import ConfigError, PkiError
from acme_ca.pki import files
from acme_ca.pki.issuer import Issuer
from acme_ca.store import open_store

# PKCS#12 as OpenSSL 3, NSS (Chromium, Firefox) and macOS read it: PBES2 with AES-256
# and a SHA-256 MAC (the legacy RC2/3DES of PKCS#12 v1 needs OpenSSL's legacy provider).
KDF_ROUNDS = 100_000


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "admin-cert",
        help="make an admin certificate (the admin listener's client certificate)",
        description="Make a key and a client certificate for an operator of the admin "
        "listener ([admin] listen), signed by the intermediate, and write both with the "
        "CA chain as PKCS#12 for a browser or curl. `acme-ca certs revoke SERIAL` locks "
        "the operator out again.",
    )
    parser.add_argument("--name", required=True,
                        help="the operator (the certificate's CN; letters, digits, - and _)")
    parser.add_argument("--out", type=Path, required=True,
                        help="the file to write (mode 0600; never overwritten)")
    parser.add_argument("--validity", default=None,
                        help=f"e.g. 30d or 12h (default {format_duration(ADMIN_VALIDITY)}, "
                        "at most 397d)")
    parser.add_argument("--password-file", type=Path, default=None,
                        help="the PKCS#12 password is this file's first line (default: "
                        "one generated and printed once)")
    parser.add_argument("--pem", action="store_true",
                        help="write the key (unencrypted) and the certificate chain as "
                        "PEM instead of PKCS#12")
    parser.set_defaults(run=run_admin_cert)


def run_admin_cert(config: Config, args: argparse.Namespace) -> int:
    try:
        validity = parse_duration(args.validity) if args.validity else ADMIN_VALIDITY
    except ValueError as exc:
        raise ConfigError(f"--validity: {exc}") from None
    if args.pem and args.password_file is not None:
        raise ConfigError("--pem writes the key unencrypted: leave out --password-file")
    password = None if args.pem or args.password_file is None else \
        read_passphrase_file(args.password_file)
    if args.out.exists():
        raise PkiError(f"{args.out} already exists; refusing to overwrite it")
    clock = SystemClock()
    ca = config.ca
    issuer = Issuer.load(
        ca.intermediate_cert, ca.intermediate_key, ca.chain,
        intermediate_passphrase(ca.intermediate_key_passphrase_file), clock.now(),
        publication=publication(config),  # its CRL and issuer URLs, as every leaf's
        pkcs11_module=ca.pkcs11_module,
    )
    made = asyncio.run(_issue(config, issuer, args.name, validity))
    generated = not args.pem and password is None
    if generated:
        password = secrets.token_urlsafe(18).encode("ascii")
    data = pem_bundle(made) if args.pem else pkcs12_bundle(made, args.name, password or b"")
    files.write_file(args.out, data, mode=files.PRIVATE_FILE, exclusive=True)
    cert = made.certificate
    print(f"Admin certificate for {args.name} (serial {serial_hex(cert.serial_number)}, valid "
          f"until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC): {args.out}")
    if generated:
        print(f"PKCS#12 password (shown once): {password.decode('ascii')}")  # type: ignore[union-attr]
    return 0


async def _issue(config: Config, issuer: Issuer, name: str, validity: Any) -> AdminCertificate:
    store = await open_store(config.storage.url, pool_size=config.storage.pool_size)
    try:
        return await issue_admin_certificate(store, issuer, SystemClock(), name,
                                             validity=validity,
                                             backdate=config.policy.backdate)
    finally:
        await store.close()


def pkcs12_bundle(made: AdminCertificate, name: str, password: bytes) -> bytes:
    """Key, certificate and chain as PKCS#12 under ``password``."""
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(
        name.encode(), made.key, made.certificate, list(made.chain), encryption)  # type: ignore[arg-type]


def pem_bundle(made: AdminCertificate) -> bytes:
    """The key (unencrypted PKCS#8), then the certificate and its chain, in PEM."""
    key = made.key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return key + files.pem(made.certificate, *made.chain)
