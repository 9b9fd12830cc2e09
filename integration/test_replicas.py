"""Three `acme-ca serve` replicas on one PostgreSQL database behind haproxy (round robin,
TLS passed through, health checks), under concurrent clients: certbot's `acme` library in
threads and lego in subprocesses (issue 10, item 4).

Replicas share nothing but the database and the CA files: a nonce from one is accepted
by the others exactly once (RFC 8555 6.5: the clients without keep-alive send each
request to the next replica, and a fault-free run sees no badNonce); an order's state
moves by compare-and-set whichever replica a request reaches, even when two replicas
validate its two authorizations at the same moment (RFC 8555 7.1.6: the client answers
both challenges at once, and the http-01 responder answers them together); background
work runs once across the cluster under the "background" lease; a replica that dies,
or a database that drops every connection, costs the clients a retry (at worst a new
order), never a certificate lost or issued twice. A revocation made on the shared database
is on the CRL every replica serves within seconds, the same CRL on each (RFC 5280 5).

Every test ends with the database's account (`check_database`): one certificate per
valid order, every certificate a client holds is there, none twice, and no order or
challenge left "processing".
"""

from __future__ import annotations

import collections
import os
import signal
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from acme_ca.authority import background, crls, sweeper
from acme_ca.pki.hierarchy import fingerprint
from acme_ca.pki.publication import CRL_ROUTE, issuer_id
from integration.cluster import Cluster, Database, Replica, make_ca, running_cluster
from integration.conftest import require_program, run_cli, until
from integration.load import NEW_ORDER, Load, Tally
from integration.test_crl import fetch, number_of, served_crl
from tests.store.pg import fresh_database

pytestmark = pytest.mark.integration

ISSUANCES = 200
KILLED_RUN = 60  # issuances in the runs that kill a replica, or the database connections
LIBRARY_THREADS = 6
LEGO_THREADS = 2
RUN_DEADLINE = 150.0  # seconds for a whole run: far beyond one that succeeds
# A dead holder's lease expires within TTL and is taken at a survivor's next try.
LEASE_MOVES_WITHIN = background.TTL + background.PERIOD + 3.0
# An order whose issuance died with its replica is ended by the lease holder's sweeper.
SETTLED_WITHIN = sweeper.DEADLINE.total_seconds() + LEASE_MOVES_WITHIN
# A revocation is published by the lease holder's next round, and a replica checks the
# stored CRL number once the CRL it holds is crls.REFRESH seconds old.
LISTED_WITHIN = 2 * background.PERIOD + crls.REFRESH + 3.0


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`acme-ca init`, once for the module: every cluster of it shares these files."""
    return make_ca(tmp_path_factory.mktemp("replicas-ca"))


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    """A fresh PostgreSQL database, dropped afterwards (its connections terminated first),
    once haproxy and lego are known to be there."""
    require_program("haproxy")
    require_program("lego")
    async with fresh_database() as url:
        yield Database(url)


def jobs(count: int) -> list[tuple[str, ...]]:
    """The names of each certificate: two per order, so that an order becomes ready only
    when both of its authorizations are valid, which two replicas may validate."""
    return [(f"n{k}a.bluerobin.local", f"n{k}b.bluerobin.local") for k in range(count)]


def all_names(work: list[tuple[str, ...]]) -> list[str]:
    return [name for names in work for name in names]


def fail_on_errors(tally: Tally, cluster: Cluster) -> None:
    if tally.errors:
        pytest.fail("clients failed:\n" + "\n".join(tally.errors) + "\n" + cluster.logs())


def left_processing(db: Database) -> list[tuple[str, ...]]:
    """The orders and the challenges (with their authorization's status) processing."""
    return [tuple(row) for row in db.query(
        "SELECT 'order', id, status FROM orders WHERE status = 'processing'"
        " UNION ALL SELECT 'challenge', c.id, 'authorization ' || a.status FROM challenges c"
        " JOIN authorizations a ON a.id = c.authorization_id WHERE c.status = 'processing'")]


def wait_until_settled(cluster: Cluster) -> None:
    """No order and no challenge left processing, once the survivors had the time to
    finish what a dead replica left (SETTLED_WITHIN)."""
    end = time.monotonic() + SETTLED_WITHIN
    while left := left_processing(cluster.database):
        if time.monotonic() > end:
            pytest.fail(f"left processing after {SETTLED_WITHIN:g} s: {left}\n{cluster.logs()}")
        time.sleep(0.2)


def check_database(cluster: Cluster, tally: Tally, expected: int) -> None:
    """Exactly one certificate per valid order; each certificate a client obtained is the
    certificate of a valid order, none twice; no order left processing.

    Where a client started again, the database may hold what it left: a valid order
    whose certificate no client holds (a `lego run` that failed after its finalize went
    through), an invalid order, with serverInternal and no certificate (an issuance
    whose replica died, ended by a survivor's sweeper). Never more than the restarts."""
    db = cluster.database
    wait_until_settled(cluster)
    restarts = tally.retries[NEW_ORDER] + len(tally.failed_lego_runs)
    orders = {order_id: (status, serial) for order_id, status, serial in db.query(
        "SELECT id, status, certificate_serial FROM orders")}
    errors = [str(error) for (error,) in db.query(
        "SELECT error FROM orders WHERE status = 'invalid'")]
    assert len(errors) <= restarts, (errors, cluster.logs())
    assert all("serverInternal" in error for error in errors), errors
    certificates = db.query(
        "SELECT serial, order_id FROM certificates"
        " WHERE order_id IS NOT NULL AND status <> 'reserved'")
    per_order = collections.Counter(order_id for _, order_id in certificates)
    of_certificate = dict(certificates)
    valid = {order_id: serial for order_id, (status, serial) in orders.items()
             if status == "valid"}
    assert all(per_order[order_id] == 1 for order_id in valid), per_order
    assert set(per_order) <= set(valid), "a certificate for an order that is not valid"
    assert all(of_certificate[serial] == order_id for order_id, serial in valid.items())

    held = [issued.serial for issued in tally.issued]
    assert len(held) == expected, (len(held), expected)
    assert len(set(held)) == len(held), "a certificate was handed out twice"
    stored = {int(serial, 16) for serial in valid.values()}
    assert set(held) <= stored, "a client holds a certificate the database does not know"
    assert len(stored) - len(held) <= restarts, (len(stored), len(held), restarts)


def assert_no_failure(cluster: Cluster, *signs: str) -> None:
    """No replica met a failure it did not expect (a traceback: a request answered 500,
    a background job that broke), nor logged any of `signs`."""
    for replica in cluster.replicas:
        log = replica.log()
        found = [sign for sign in ("Traceback", *signs) if sign in log]
        assert not found, f"{replica.name} logged {found}:\n{cluster.logs()}"


def report(what: str, tally: Tally, elapsed: float, cluster: Cluster) -> None:
    by_client = collections.Counter(issued.client for issued in tally.issued)
    served = {name: state.total for name, state in cluster.proxy.servers().items()}
    print(f"\n{what}: {len(tally.issued)} issuances in {elapsed:.1f} s "
          f"({len(tally.issued) / elapsed:.1f}/s; {dict(by_client)}), connections per "
          f"replica {served}, retries {dict(tally.retries)}, "
          f"failed lego runs {len(tally.failed_lego_runs)}")
    for stderr in tally.failed_lego_runs:
        print("  a failed lego run:", stderr.strip().splitlines()[-1])


def test_concurrent_clients_through_three_replicas(
    tmp_path: Path, ca: dict[str, Path], database: Database
) -> None:
    work = jobs(ISSUANCES)
    with running_cluster(tmp_path, ca, database, all_names(work)) as cluster:
        started = time.monotonic()
        load = Load(cluster, tmp_path, work, library=LIBRARY_THREADS, lego=LEGO_THREADS)
        tally = load.start().join(RUN_DEADLINE)
        report("three replicas", tally, time.monotonic() - started, cluster)
        fail_on_errors(tally, cluster)
        assert not tally.retries, tally.retries  # nothing failed: nothing to retry
        assert_no_failure(cluster, " ERROR ")  # nor behind the clients' backs
        assert not tally.failed_lego_runs, tally.failed_lego_runs[0]
        assert {issued.client for issued in tally.issued} == {"acme", "lego"}
        served = cluster.proxy.servers()
        assert all(state.total > 0 for state in served.values()), served
        check_database(cluster, tally, ISSUANCES)


def wait_for_progress(load: Load, count: int) -> None:
    until(lambda: load.done >= count, f"{count} issuances were done", RUN_DEADLINE)


def lease_holder(cluster: Cluster) -> str | None:
    """The replica ("r0", ...) whose process holds the unexpired "background" lease; the
    holder names its process as host/pid/random (authority/background.py)."""
    rows = cluster.database.query(
        "SELECT holder FROM leases WHERE name = 'background' AND expires > now()")
    if not rows:
        return None
    pid = int(rows[0][0].split("/")[1])
    return next((r.name for r in cluster.replicas if r.process.pid == pid), f"pid {pid}")


def test_a_replica_killed_mid_run(
    tmp_path: Path, ca: dict[str, Path], database: Database
) -> None:
    """kill -9 of the replica that holds the background lease while clients issue: their
    requests that die with it are retried on the survivors, the lease moves to a survivor,
    and a survivor finishes what the dead one left processing."""
    work = jobs(KILLED_RUN)
    with running_cluster(tmp_path, ca, database, all_names(work)) as cluster:
        until(lambda: lease_holder(cluster) is not None, "a replica holds the lease")
        victim = cluster.replica(str(lease_holder(cluster)))
        started = time.monotonic()
        load = Load(cluster, tmp_path, work, library=LIBRARY_THREADS, lego=LEGO_THREADS)
        load.start()
        wait_for_progress(load, len(work) // 3)
        os.kill(victim.process.pid, signal.SIGKILL)
        assert victim.process.wait(timeout=10) == -signal.SIGKILL
        killed = time.monotonic()
        until(lambda: lease_holder(cluster) not in (None, victim.name),
              f"the lease moved from {victim.name} to a survivor", LEASE_MOVES_WITHIN)
        moved = time.monotonic() - killed
        successor = lease_holder(cluster)
        assert successor in {r.name for r in cluster.replicas if r is not victim}, successor
        until(lambda: cluster.proxy.servers()[victim.name].status.startswith("DOWN"),
              f"haproxy took {victim.name} out")
        tally = load.join(RUN_DEADLINE)
        report(f"{victim.name} killed (lease to {successor} in {moved:.1f} s)", tally,
               time.monotonic() - started, cluster)
        fail_on_errors(tally, cluster)
        check_database(cluster, tally, len(work))
        assert_no_failure(cluster)
        survivors = [r for r in cluster.replicas if r is not victim]
        assert all(r.process.poll() is None for r in survivors)


def test_every_database_connection_killed_mid_run(
    tmp_path: Path, ca: dict[str, Path], database: Database
) -> None:
    """pg_terminate_backend on every connection of the replicas, twice during a run: they
    reconnect by themselves (clients meanwhile get 503 with Retry-After, or a retried
    connection), and the run completes with no replica restarted."""
    work = jobs(KILLED_RUN)
    with running_cluster(tmp_path, ca, database, all_names(work)) as cluster:
        pids = [r.process.pid for r in cluster.replicas]
        started = time.monotonic()
        load = Load(cluster, tmp_path, work, library=LIBRARY_THREADS, lego=LEGO_THREADS)
        load.start()
        killed = []
        for part in (1, 2):
            wait_for_progress(load, part * len(work) // 3)
            killed.append(database.terminate_connections())
        tally = load.join(RUN_DEADLINE)
        report(f"database connections killed ({killed})", tally,
               time.monotonic() - started, cluster)
        fail_on_errors(tally, cluster)
        assert all(count >= len(cluster.replicas) for count in killed), killed
        assert [r.process.pid for r in cluster.replicas] == pids
        assert all(r.process.poll() is None for r in cluster.replicas), cluster.logs()
        until(cluster.proxy.all_up, "every replica is UP again in haproxy")
        check_database(cluster, tally, len(work))
        assert_no_failure(cluster)  # the outage was answered 503, never 500


class CrlWatch:
    """The CRL of the cluster's intermediate as each replica serves it on its own
    [revocation] http_listen; every fetch checks that the replica's CRL number did not
    go down since its last one (RFC 5280 5.2.3: monotonically increasing)."""

    def __init__(self, cluster: Cluster, intermediate: Path) -> None:
        self.cluster = cluster
        issuer = fingerprint(x509.load_pem_x509_certificate(intermediate.read_bytes()))
        self.path = CRL_ROUTE.format(issuer=issuer_id(issuer))
        self.numbers: dict[str, list[int]] = {r.name: [] for r in cluster.replicas}

    def url(self, replica: Replica) -> str:
        config = tomllib.loads((replica.data_dir.parent / f"{replica.name}.toml").read_text())
        return f"http://{config['revocation']['http_listen']}{self.path}"

    def fetch(self, replica: Replica) -> x509.CertificateRevocationList:
        crl = served_crl(self.url(replica))
        number = number_of(crl)
        seen = self.numbers[replica.name]
        assert not seen or number >= seen[-1], (replica.name, seen, number)
        seen.append(number)
        return crl

    def agreed(self, serial: int) -> bool:
        """Every replica serves the same CRL (number and DER), and it lists ``serial``."""
        served = [self.fetch(replica) for replica in self.cluster.replicas]
        listed = all(c.get_revoked_certificate_by_serial_number(serial) for c in served)
        return listed and len({c.public_bytes(Encoding.DER) for c in served}) == 1


def test_a_revocation_shows_on_every_replicas_crl(
    tmp_path: Path, ca: dict[str, Path], database: Database
) -> None:
    """RFC 5280 5: `acme-ca certs revoke` on the shared database (one replica's
    configuration) is on the CRL that each replica serves over plain HTTP within
    seconds, the same CRL (number and DER) on every replica; and the CRL number of
    none goes down while they run (5.2.3), over two revocations one after the other."""
    work = jobs(2)
    with running_cluster(tmp_path, ca, database, all_names(work)) as cluster:
        tally = Load(cluster, tmp_path, work, library=1, lego=0).start().join(RUN_DEADLINE)
        fail_on_errors(tally, cluster)
        watch = CrlWatch(cluster, ca["intermediate_cert"])
        until(lambda: all(fetch(watch.url(r)).status == 200 for r in cluster.replicas),
              "every replica serves a CRL", LISTED_WITHIN)
        for replica in cluster.replicas:
            watch.fetch(replica)
        config = tmp_path / f"{cluster.replicas[0].name}.toml"
        for issued in tally.issued:
            result = run_cli("--config", config, "certs", "revoke", format(issued.serial, "X"),
                             "--reason", "keyCompromise", cwd=tmp_path)
            assert "Revoked the certificate" in result.stdout, result.stdout + result.stderr
            until(lambda serial=issued.serial: watch.agreed(serial),
                  f"every replica serves one CRL listing {issued.serial:x}", LISTED_WITHIN)
        for replica in cluster.replicas:  # a new CRL for each revocation
            numbers = watch.numbers[replica.name]
            assert numbers[-1] >= numbers[0] + len(tally.issued), (replica.name, numbers)
        assert_no_failure(cluster, " ERROR ")
