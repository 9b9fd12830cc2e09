"""A private PostgreSQL server for the tests that must stop it or set it up for TLS.

The shared server (``tests/store/pg.py``) cannot be reconfigured or stopped, so
these tests start their own: ``initdb`` in a fresh directory, a free port on
127.0.0.1, TLS on with a server certificate from a throwaway CA, and ``hostssl``
as the only way in (as the deployment guide sets it up). As root, the server runs
as the ``postgres`` user (PostgreSQL refuses to run as root). ``stop`` and ``start``
go through ``pg_ctl``, which signals the postmaster by the pid in its own directory.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.http01 import free_port
from tests.required import missing

BIN = Path(os.environ.get("ACME_CA_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey,
                 issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
                 ) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer[0].subject if issuer else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=1)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        return builder.sign(key, hashes.SHA256())
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    builder = (builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
               .add_extension(san, False))
    return builder.sign(issuer[1], hashes.SHA256())


def write_ca(path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A throwaway CA certificate in ``path`` (PEM), and its key."""
    key = _key()
    certificate = _certificate("acme-ca test database CA", key, None)
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


class PrivateServer:
    """One PostgreSQL cluster in a directory of its own, TLS only."""

    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            missing(f"no PostgreSQL server programs in {BIN} (set ACME_CA_PG_BIN)")
        self._as: list[str] = []
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                missing("running as root, and there is no postgres user to run a server")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="acme-ca-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.ca = self.root / "ca.pem"
        self.other_ca = self.root / "other-ca.pem"
        self._tls = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key "
        self._listen = "-c listen_addresses=127.0.0.1 "
        try:  # a failed initdb leaves no directory behind
            if owner is not None:
                os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._run(str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                      "-A", "trust", "--no-sync", "--no-instructions")
            self._write_tls()
            (self.data / "pg_hba.conf").write_text(
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n", encoding="utf-8")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def url(self, query: str = "") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres{query}"

    def start(self) -> None:
        options = (f"-c port={self.port} {self._listen}"
                   f"-c unix_socket_directories={self.root} {self._tls}-c fsync=off")
        self._run(str(BIN / "pg_ctl"), "start", "-w", "-D", str(self.data),
                  "-l", str(self.root / "server.log"), "-o", options)

    def configure(self, conf: str, hba: str, ident: str = "") -> None:
        """Serve with these postgresql.conf lines (TLS and listen_addresses included,
        which must be loopback: the throwaway CA's files are no longer used),
        pg_hba.conf and pg_ident.conf, as a guide sets them up."""
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as settings:
            settings.write(conf)
        (self.data / "pg_hba.conf").write_text(hba, encoding="utf-8")
        (self.data / "pg_ident.conf").write_text(ident, encoding="utf-8")
        self._tls = self._listen = ""

    def psql_argv(self) -> list[str]:
        """psql as the cluster's owner over its Unix socket (how the owner administers it)."""
        return [*self._as, str(BIN / "psql"), "-h", str(self.root), "-p", str(self.port),
                "-U", "postgres", "-d", "postgres"]

    def stop(self) -> None:
        self._run(str(BIN / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_tls(self) -> None:
        ca = write_ca(self.ca)
        write_ca(self.other_ca)
        key = _key()
        certificate = _certificate("127.0.0.1", key, ca)
        cert_file, key_file = self.data / "server.crt", self.data / "server.key"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        os.chmod(key_file, 0o600)
        if self._as:
            owner = pwd.getpwnam("postgres")
            for path in (self.ca, self.other_ca):
                os.chmod(path, 0o644)
            for path in (cert_file, key_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, timeout=60,
                       cwd=self.root)
