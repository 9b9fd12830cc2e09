"""Signatures per second and latency: a key on a SoftHSM2 token (``TokenSigner``) beside
the same kind of key in memory (``FileSigner``), for P-256, P-384 and RSA-2048, from
one thread and from 8 (docs/performance.md, "Keys on a token (issue 14)").

    .venv/bin/python -m bench.token_sign [N]

The token is one of the run's own (tests/softhsm.py, in a temporary directory).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.keys import KeyType, PublicKey, generate_key
from acme_ca.pki.signer import FileSigner, Signer
from acme_ca.pki.token import generate_token_key, open_token_signer
from tests.softhsm import SoftHsm

THREADS = 8
DATA = os.urandom(400)  # about the size of a leaf's tbsCertificate


def certificate_of(public_key: PublicKey) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(public_key).serial_number(1)
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))


def measure(signer: Signer, count: int) -> str:
    latencies = []
    for _ in range(count):
        start = time.perf_counter()
        signer.sign(DATA)
        latencies.append(time.perf_counter() - start)
    one = count / sum(latencies)
    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda _: signer.sign(DATA), range(count)))
    many = count / (time.perf_counter() - start)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    return (f"{one:8.0f}/s 1 thread, {many:8.0f}/s {THREADS} threads, "
            f"median {statistics.median(latencies) * 1000:6.3f} ms, p99 {p99 * 1000:6.3f} ms")


def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        softhsm = SoftHsm.create(Path(directory))
        os.environ["SOFTHSM2_CONF"] = str(softhsm.conf)
        for key_type in (KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA2048):
            uri = Pkcs11Uri.parse(softhsm.uri(key_type.value))
            public_key, _ = generate_token_key(uri, softhsm.module, key_type)
            token = open_token_signer(uri, softhsm.module, certificate_of(public_key))
            file = FileSigner(generate_key(key_type))
            print(f"{key_type.value:8} token: {measure(token, count)}")
            print(f"{key_type.value:8} file:  {measure(file, count)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
