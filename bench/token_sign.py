"""What one signature costs, per key type, with the key in a file and on a SoftHSM2 token
(docs/performance.md, "HSM (issue 14)").

    .venv/bin/python -m bench.token_sign [-n 2000] [--types ec-p256,ec-p384,rsa2048,rsa4096]

For each key type: a key in memory (``FileSigner``, what a key file becomes) and a key
generated on a fresh SoftHSM2 token in a temporary directory (``pki/token.py``, the
token made as bench/builds.py makes it for ``compare --intermediate-key token``).
Each signer signs N times, one after the other, in this process:

- ``sign``: ``Signer.sign`` over a leaf certificate's to-be-signed bytes;
- ``8 threads``: signatures per second from 8 threads at once (a token signer signs
  one at a time: one lock per module);
- ``certificate``: ``sign_certificate``, a whole leaf as the CA builds it (for a token,
  the stand-in's signature, the token's over the TBS, its check and the DER put back);
- ``off loop``: ``Signer.sign`` awaited through ``off_loop`` (the signing pool), one at
  a time: what the hand-off to the pool's thread adds to a signature.

Prints the median and p99 wall time and the CPU time per call (process CPU: SoftHSM2
is a library that runs in this process), in microseconds, as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acme_ca.pki.keys import KeyType, PublicKey, generate_key, signature_hash
from acme_ca.pki.signer import FileSigner, Signer, off_loop, sign_certificate
from bench import builds
from bench.report import percentile

DEFAULT_TYPES = "ec-p256,ec-p384,rsa2048,rsa4096"
THREADS = 8


def _builder(subject_key: PublicKey, issuer: x509.Name) -> x509.CertificateBuilder:
    """A certificate of ``subject_key`` with one name, as acme-ca's profile makes a leaf."""
    now = datetime.now(UTC)
    name = "1.bench.bluerobin.local"
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )


def _ca_certificate(public_key: PublicKey) -> x509.Certificate:
    """A certificate carrying ``public_key``, signed by a throwaway key: what
    ``open_token_signer`` matches the token's key against."""
    signer = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench signer")])
    return _builder(public_key, name).sign(signer, signature_hash(signer))


def _time(fn: Callable[[], object], n: int) -> tuple[list[float], float]:
    """Wall seconds of each of ``n`` calls, and the CPU seconds per call."""
    fn()  # warm: sessions, stand-in keys
    walls = []
    cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
    return walls, (time.process_time() - cpu) / n


async def _off_loop(signer: Signer, tbs: bytes, n: int) -> tuple[list[float], float]:
    await off_loop(signer.sign, tbs)
    walls = []
    cpu = time.process_time()
    for _ in range(n):
        start = time.perf_counter()
        await off_loop(signer.sign, tbs)
        walls.append(time.perf_counter() - start)
    return walls, (time.process_time() - cpu) / n


def _threads(signer: Signer, tbs: bytes, n: int) -> float:
    """Signatures per second, ``n`` of them from THREADS threads at once."""
    start = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda _: signer.sign(tbs), range(n)))
    return n / (time.perf_counter() - start)


def measure(signer: Signer, n: int) -> dict[str, tuple[list[float], float] | float]:
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench intermediate")])
    builder = _builder(ec.generate_private_key(ec.SECP256R1()).public_key(), issuer)
    tbs = sign_certificate(builder, signer).tbs_certificate_bytes
    return {
        "sign": _time(lambda: signer.sign(tbs), n),
        f"{THREADS} threads": _threads(signer, tbs, n),
        "certificate": _time(lambda: sign_certificate(builder, signer), n),
        "off loop": asyncio.run(_off_loop(signer, tbs, n)),
    }


def token_signers(types: list[KeyType], directory: Path) -> dict[KeyType, Signer]:
    """One key per type on a fresh SoftHSM2 token in ``directory``."""
    from acme_ca.pkcs11_uri import Pkcs11Uri
    from acme_ca.pki.token import generate_token_key, open_token_signer

    conf, uri, module = builds.make_token(directory)
    os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is first loaded
    signers: dict[KeyType, Signer] = {}
    for kind in types:
        labelled = Pkcs11Uri.parse(uri.replace("object=intermediate", f"object=bench-{kind}"))
        public_key, pinned = generate_token_key(labelled, module, kind)
        signer = open_token_signer(pinned, module, _ca_certificate(public_key))
        assert isinstance(signer, Signer)
        signers[kind] = signer
    return signers


def _row(kind: KeyType, where: str,
         results: dict[str, tuple[list[float], float] | float]) -> str:
    cells = []
    for result in results.values():
        if isinstance(result, float):
            cells.append(f"{result:.0f}/s")
            continue
        walls, cpu = result
        median, p99 = statistics.median(walls), percentile(walls, 99) or 0.0
        cells.append(f"{median * 1e6:.0f} / {p99 * 1e6:.0f} / {cpu * 1e6:.0f}")
    return f"| {kind} | {where} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.token_sign",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="signatures per measure (2000)")
    parser.add_argument("--types", default=DEFAULT_TYPES, help=f"key types ({DEFAULT_TYPES})")
    args = parser.parse_args(argv)
    types = [KeyType(t) for t in args.types.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-sign-") as directory:
        try:
            tokens = token_signers(types, Path(directory))
        except RuntimeError as exc:
            print(f"bench.token_sign: {exc}", file=sys.stderr)
            return 2
        print(f"n={args.n}; us per call: median / p99 wall / CPU; load "
              f"{os.getloadavg()[0]:.2f}")
        print(f"| key | where | sign | {THREADS} threads | certificate | off loop |")
        print("|---|---|---|---|---|---|")
        for kind in types:
            print(_row(kind, "file", measure(FileSigner(generate_key(kind)), args.n)),
                  flush=True)
            print(_row(kind, "SoftHSM2", measure(tokens[kind], args.n)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
