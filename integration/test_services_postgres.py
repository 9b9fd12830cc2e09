"""docs/services.md's PostgreSQL, end to end: a throwaway cluster, certificates from ACME.

certbot (PyPI) gets the database server's certificate (profile `server`), and its
deploy hook installs it for the postgres user, as the page says; the cluster
(tests/store/postgres/server.py: initdb on a free loopback port, run as the postgres
user) runs the page's postgresql.conf lines, pg_hba.conf (`hostssl ... cert
map=acme`) and pg_ident.conf. The client makes its key and request with openssl and
certbot has them signed with the `client` profile (`--csr`); psql with
`sslmode=verify-full` and that certificate is the database user `app` (the common
name, through the map). Without a client certificate: refused; with another client's
(worker1.bluerobin.local, made by the same block) as user app or postgres: refused.

Substitutions besides the CA's URL and the directories: the server listens on
127.0.0.1 rather than the page's `*` (its other lines, pg_hba's `samenet` included,
run as written; only the port is given on the command line), the page's `host=...
port=5432` gains `hostaddr=127.0.0.1` and the cluster's port (libpq connects to the
address and checks the name), and `sudo -u postgres psql` is psql as the cluster's
owner on its socket. Only as root (as CI runs it): for anyone else the cluster would
run as that user, whom the page's `local all postgres peer` refuses, so it skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from integration.conftest import clean_env, run
from integration.services import Guide, serving_ca, substitute
from tests.required import missing, require_program
from tests.store.postgres.server import BIN, PrivateServer

pytestmark = pytest.mark.integration

DATA = "/etc/postgresql/15/main"
OTHER = "worker1"  # another client: its certificate's name is worker1.bluerobin.local
CLIENT = " sslcert=app-fullchain.crt sslkey=app.key"


class Cluster(NamedTuple):
    guide: Guide
    server: PrivateServer

    def psql(self, *changes: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        """The page's psql line (with `changes` made to it), as run by a user whose home
        holds no ~/.postgresql client certificate."""
        script = self.guide.text("psql")
        for guide, here in changes:
            script = substitute(script, guide, here)
        env = clean_env({"HOME": str(self.guide.home), "PATH": f"{BIN}:{os.environ['PATH']}"})
        return run(["bash", "-eu", "-c", script], cwd=self.guide.home, env=env, check=False,
                   timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The CA, the server's certificate, the cluster configured as the page says and
    started, the role made, the client's certificate."""
    require_program("openssl")
    if os.geteuid() != 0:  # the cluster would run as this user, whom peer refuses
        missing("docs/services.md's pg_hba.conf (local all postgres peer) lets only the "
                "postgres system user administer the cluster: run as root, which runs it "
                "as postgres")
    home = tmp_path_factory.mktemp("postgres")
    server = PrivateServer()
    try:
        with serving_ca(home / "acme-ca") as acme:
            root = server.root / "bluerobin-root.crt"  # where the postgres user reads it
            shutil.copy(acme.root_cert, root)
            root.chmod(0o644)
            guide = Guide(acme, home, root)
            guide.replace(DATA, str(server.data))
            guide.replace("listen_addresses = '*'", "listen_addresses = '127.0.0.1'")
            guide.replace("host=db.bluerobin.local port=5432",
                          f"host=db.bluerobin.local hostaddr=127.0.0.1 port={server.port}")
            guide.replace("sudo -u postgres psql", " ".join(server.psql_argv()))
            guide.sh("postgres-server-certificate")
            server.configure(guide.text("postgresql.conf"), guide.text("pg_hba.conf"),
                             guide.text("pg_ident.conf"))
            server.start()
            guide.sh("postgres-role")
            guide.sh("postgres-client-certificate")
            guide.sh("postgres-client-certificate", ("app", OTHER))  # a second client
            yield Cluster(guide, server)
    finally:
        server.remove()


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_certificates_come_from_their_profiles(cluster: Cluster) -> None:
    usages = x509.ExtendedKeyUsage
    served = leaf(cluster.server.data / "db.crt")
    assert list(served.extensions.get_extension_for_class(usages).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    client = leaf(cluster.guide.home / "app.crt")
    assert list(client.extensions.get_extension_for_class(usages).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.subject.rfc4514_string() == "CN=app.bluerobin.local"


def test_psql_with_the_client_certificate_is_the_mapped_user(cluster: Cluster) -> None:
    result = cluster.psql()
    assert result.returncode == 0, result
    assert result.stdout.split()[:3] == ["current_user", "--------------", "app"], result


def test_psql_without_a_client_certificate_is_refused(cluster: Cluster) -> None:
    result = cluster.psql((CLIENT, ""))
    assert result.returncode == 2, result
    assert "connection requires a valid client certificate" in result.stderr, result


def test_psql_with_a_server_certificate_as_its_own_is_refused(cluster: Cluster) -> None:
    """OpenSSL in the server checks the client certificate's purpose (clientAuth)."""
    live = cluster.guide.live("db.bluerobin.local")
    result = cluster.psql((CLIENT, f" sslcert={live}/fullchain.pem sslkey={live}/privkey.pem"))
    assert result.returncode == 2, result
    assert "unsupported certificate" in result.stderr, result


@pytest.mark.parametrize("user", ["app", "postgres"])
def test_a_client_certificate_for_another_name_is_not_that_user(cluster: Cluster,
                                                                 user: str) -> None:
    """pg_hba `cert map=acme`: a valid client certificate is only the user its common
    name maps to (worker1.bluerobin.local is worker1), never the one it asks for."""
    result = cluster.psql(("user=app", f"user={user}"),
                          (CLIENT, f" sslcert={OTHER}-fullchain.crt sslkey={OTHER}.key"))
    assert result.returncode == 2, result
    assert f'certificate authentication failed for user "{user}"' in result.stderr, result
