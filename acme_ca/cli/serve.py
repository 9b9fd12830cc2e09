"""`acme-ca serve`: the HTTPS server in front of the intermediate CA.

On first start with no CA in the data directory it bootstraps one (see
`ca_init.bootstrap`); every start, once listening, warns in one line while the
root key is still in the data directory (the server never reads it, but a thief of
the host would take it too), and says how many keys the key blocklist holds.
SIGHUP reloads the configuration file (what can change at run time: ``cli/reload.py``)
and the intermediate (after `acme-ca intermediate renew`) without dropping
connections; SIGTERM or SIGINT stop it gracefully: no new connection, the work in
flight finished within ``[server] shutdown_timeout`` (``cli/lifecycle.py``).

Beside the ACME listener it starts, when configured, the plain-HTTP publication
listener ([revocation] http_listen) and the admin listener ([admin] listen: /metrics,
health, the dashboard, admin certificates only; its TLS trusts the new intermediate
after a reload); the applications are built in ``cli/wiring.py``. With ``[server]
workers`` N > 1 (or "auto": one per core) it forks N processes sharing the ports
(``cli/workers.py``), as many as the startup line says; their metrics go to a
directory of this run's own, summed by whichever answers /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from aiohttp import web

from acme_ca import __version__
from acme_ca.authority.archived_keys import ArchivedKeys
from acme_ca.authority.crls import unsigned_crl_problem
from acme_ca.authority.ocsp import OcspResponder
from acme_ca.authority.server_tls import ServerTls
from acme_ca.authority.settings import Settings
from acme_ca.cli import logs
from acme_ca.cli.ca_hierarchy import hierarchy_files
from acme_ca.cli.ca_init import bootstrap
from acme_ca.cli.ca_renew import archived_key_retention
from acme_ca.cli.lifecycle import (
    HANDLERS_GRACE,
    ignore_sighup_until_serving,
    reloader,
    stop_gracefully,
)
from acme_ca.cli.reload import reload_config
from acme_ca.cli.secrets import intermediate_passphrase
from acme_ca.cli.wiring import (
    admin_issuers_pem,
    admin_tls_context,
    admin_url,
    build_admin_app,
    build_app,
    build_ocsp,
    build_publication_app,
    own_endpoints,
    publication,
)
from acme_ca.cli.workers import run_workers, shared_metrics
from acme_ca.clock import Clock, SystemClock
from acme_ca.config import Config, parse_host_port
from acme_ca.domain.origin import Origin, set_origin
from acme_ca.errors import AcmeCaError, PkiError
from acme_ca.metrics import Timed, single_process
from acme_ca.pkcs11_uri import Pkcs11Uri
from acme_ca.pki.archive import archive_dir
from acme_ca.pki.issuer import Issuer
from acme_ca.pki.keys import same_key
from acme_ca.pki.signer import off_loop
from acme_ca.store import open_store
from acme_ca.store.base import Store
from acme_ca.store.reads import ReadStore

log = logging.getLogger("acme_ca.serve")


def add_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the server (bootstraps a CA on first start)",
        description="Run the HTTPS server in front of the intermediate CA. With no CA in "
        "the data directory, one is created first.",
    )
    serve.add_argument("--listen", metavar="HOST:PORT", help="override [server] listen")
    serve.add_argument("--hostname", metavar="NAME", help="override [server] hostname")
    serve.add_argument("--workers", metavar="N|auto",
                       help="override [server] workers: processes sharing the port "
                       "('auto': one per core this process may run on)")
    serve.add_argument("--http-listen", metavar="HOST:PORT",
                       help="override [revocation] http_listen: the plain-HTTP listener "
                       "of CRLs (and OCSP) for relying parties")
    serve.set_defaults(
        run=run_serve,
        overrides=lambda a: {"server.listen": a.listen, "server.hostname": a.hostname,
                             "server.workers": a.workers,
                             "revocation.http_listen": a.http_listen},
    )


def run_serve(config: Config, args: argparse.Namespace) -> int:
    ignore_sighup_until_serving()
    logs.configure(config.server.log_format)  # text, or one JSON object a line
    paths = hierarchy_files(config)
    online = paths.online()  # a key on a token: the token is checked as the issuer loads
    present = [p for p in online if p.exists()]
    if not present:
        bootstrap(config)
    elif len(present) < len(online):
        missing = next(p for p in online if not p.exists())
        raise PkiError(
            f"the CA in {config.server.data_dir} is incomplete: {missing} is missing "
            "(restore it, or import a hierarchy with `acme-ca init --import`)"
        )
    workers = config.server.workers
    clock = SystemClock()
    set_origin(Origin())  # the server acts for its clients (each request sets its origin)
    _freeze_startup_objects()
    load = reloader(args)
    shared = workers > 1 and config.admin.listen is not None
    if not shared:
        single_process()  # never an inherited PROMETHEUS_MULTIPROC_DIR
    if workers == 1:
        asyncio.run(serve(config, clock, load=load))
        return 0
    _share_token_logins(config)  # inherited by the workers, for their logins and reconnects
    with shared_metrics(config.server.data_dir / "metrics") if shared else nullcontext():
        asyncio.run(prepare_tls(config, clock))  # issued once, before the workers share it
        return run_workers(workers,
                           lambda index: asyncio.run(serve(config, clock, index, load=load)))


def _processes(config: Config) -> str:
    """How many processes serve, for the startup line: "1 process", "2 workers",
    "2 workers (auto: one per core)"."""
    count = config.server.workers
    said = "1 process" if count == 1 else f"{count} workers"
    return f"{said} (auto: one per core)" if config.server.workers_auto else said


def _uri(location: Path | Pkcs11Uri) -> Pkcs11Uri | None:
    return location if isinstance(location, Pkcs11Uri) else None


def _share_token_logins(config: Config) -> None:
    """With workers and the key on a token, the workers initialise the library and log
    in one after another, at start and at each reconnect after a token failure (an
    exclusive lock on <data_dir>/pkcs11.lock: ``token_session.share_logins``, which says why).
    A real HSM's library does not need this; it costs one login's time per worker."""
    if config.server.workers > 1 and isinstance(config.ca.intermediate_key, Pkcs11Uri):
        from acme_ca.pki.token_session import share_logins

        share_logins(config.server.data_dir / "pkcs11.lock")


def root_key_warning(config: Config) -> str | None:
    """The line `serve` says at start while the root key sits in its data directory."""
    root_key = hierarchy_files(config).root_key
    if not root_key.exists():
        return None
    return (
        f"the root key {root_key} sits in the data directory of this running server: "
        "move it offline (only `acme-ca intermediate renew` needs it)"
    )


def blocklist_status(config: Config) -> tuple[int, str] | None:
    """(log level, line) that `serve` says at start about [policy] blocked_keys_file: how
    many keys it holds, a WARNING when none (an empty or truncated file refuses
    nothing); None without a blocklist."""
    path, count = config.policy.blocked_keys_file, len(config.policy.blocked_keys)
    if path is None:
        return None
    if not count:
        return logging.WARNING, (f"the key blocklist {path} lists no key: no key is refused "
                                 "as known-compromised")
    return logging.INFO, (f"key blocklist {path}: {count} key{'s' if count > 1 else ''} "
                          "refused as known-compromised")


def _freeze_startup_objects() -> None:
    """Move what imports and configuration made into the collector's permanent
    generation: a full collection under load then walks only the objects requests
    made (measured at C=8: 15 ms -> 1.2 ms), and forked workers keep sharing those
    pages instead of copying them when the collector touches their headers."""
    gc.collect()
    gc.freeze()


class IssuerHolder:
    """The current intermediate, with the archived intermediates' keys still kept (read
    once per load: they sign CRLs) and the URLs its leaves carry; ``checked_reload``
    swaps it atomically, keeping the old on failure."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self.current = self._load()

    def _load(self) -> Issuer:
        ca = self._config.ca
        issuer = Issuer.load(
            ca.intermediate_cert,
            ca.intermediate_key,
            ca.chain,
            intermediate_passphrase(ca.intermediate_key_passphrase_file),
            self._clock.now(),
            ca.alternate_chains,
            publication(self._config),
            archived_keys=True,  # they sign the CRLs of what they issued
            pkcs11_module=ca.pkcs11_module,
        )
        if same_key(issuer.signer.public_key, issuer.root.public_key()):  # type: ignore[arg-type]
            raise PkiError(
                f"{ca.intermediate_key} is the root key: the server never uses the "
                "root key; point [ca] intermediate_key at the intermediate's key"
            )
        return issuer

    def __call__(self) -> Issuer:
        return self.current

    def candidate(self) -> Issuer | None:
        """The intermediate as the files hold it now; None (said) if it cannot load."""
        try:
            return self._load()
        except AcmeCaError as exc:
            log.error("reload failed, keeping the current intermediate: %s", exc)
            return None

    def swap(self, new: Issuer) -> bool:
        """Serve with ``new``; whether the intermediate changed."""
        changed = new.fingerprint != self.current.fingerprint
        self.current = new
        return changed


async def _refuse_unsigned_crls(store: ReadStore, issuer: Issuer, now: datetime) -> None:
    """A start refused while an archived key cannot be read and still signs CRLs."""
    problem = await unsigned_crl_problem(store, issuer, now)
    if problem is not None:
        raise PkiError(problem)


async def checked_reload(holder: IssuerHolder, store: ReadStore, now: datetime) -> bool:
    """SIGHUP (the one reload path): the intermediate as the files hold it now, unless
    it cannot load or an archived key of the new load cannot be read and still signs
    CRLs (``unsigned_crl_problem``): then the current one is kept. Whether it changed.
    The load runs in the signing pool: it reads and decrypts key files, and finds each
    key on a token by a probe signature (a login first), which may take as long as the
    token does; the event loop goes on serving meanwhile."""
    new = await off_loop(holder.candidate)
    if new is None:
        return False
    problem = await unsigned_crl_problem(store, new, now)
    if problem is not None:
        log.error("reload failed, keeping the current intermediate: %s", problem)
        return False
    return holder.swap(new)


def server_tls(config: Config, store: Store, issuer: IssuerHolder, clock: Clock) -> ServerTls:
    dns, ips = config.server.own_names
    return ServerTls(
        store=store,
        issuer=issuer,
        dns_names=dns,
        ip_addresses=ips,
        directory=config.server.data_dir / "tls",
        clock=clock,
        backdate=config.policy.backdate,
    )


async def prepare_tls(config: Config, clock: Clock) -> None:
    """Before forking workers: refuse to start while an archived key cannot be read
    and still signs CRLs (once, not once per worker: ``serve`` checks only without
    workers), and make sure a valid server TLS certificate (and, with OCSP on, valid
    responder certificates) are on disk."""
    store = await open_store(config.storage.url, pool_size=config.storage.pool_size)
    try:
        issuer = IssuerHolder(config, clock)
        await _refuse_unsigned_crls(store, issuer.current, clock.now())
        await server_tls(config, store, issuer, clock).start()
        ocsp = build_ocsp(config, store, issuer, clock)
        if ocsp is not None:  # and the OCSP responder certificates
            await ocsp.responders.start()
    finally:
        await store.close()


async def serve(config: Config, clock: Clock, worker: int = 0,
                load: Callable[[], Config] | None = None) -> None:
    """One server process; with several workers, worker 0 renews the TLS certificate
    and the others follow its file. The cluster's background work runs in whichever
    process of any replica holds its lease (``build_app``, ``authority/background.py``).
    SIGHUP: ``load`` gives the configuration again (``cli/reload.py``), then the
    intermediate is read again; SIGTERM or SIGINT: ``stop_gracefully``."""
    settings = Settings(config)
    issuer = IssuerHolder(config, clock)
    store = await open_store(config.storage.url, pool_size=config.storage.pool_size)
    if config.admin.listen is not None:  # its /metrics shows the store's latency
        store = cast(Store, Timed(store))
    runners: list[web.AppRunner] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        if config.server.workers == 1:  # with workers, prepare_tls checked before the fork
            await _refuse_unsigned_crls(store, issuer.current, clock.now())
        # The plain-HTTP listener first: it starts nothing, so a port already taken is
        # said before any background work or certificate is started.
        ocsp = build_ocsp(config, store, issuer, clock)  # answers tryLater until started
        await _listen(runners, build_publication_app(store, issuer, clock, ocsp),
                      config.revocation.http_listen, config, None,
                      setting=" ([revocation] http_listen)")
        tls = server_tls(config, store, issuer, clock)
        context = await tls.start()
        admin = None
        if config.admin.listen is not None:  # bound before the ACME app starts its work
            admin = tls.share(admin_tls_context(issuer.current))
            admin_app = build_admin_app(store, issuer, clock, config.server.data_dir)
            await _listen(runners, admin_app, config.admin.listen, config, admin,
                          setting=" ([admin] listen)")
        acme = build_app(config, store, issuer, clock, own=await own_endpoints(config),
                         settings=settings)
        await _listen(runners, acme, config.server.listen, config, context)
        if ocsp is not None:  # worker 0 issues or reuses; the others load what it wrote
            if worker == 0:
                await ocsp.responders.start()
            else:
                ocsp.responders.load()
            tasks.append(asyncio.create_task(ocsp.responders.run_renewals() if worker == 0
                                             else ocsp.responders.follow()))
        warning = root_key_warning(config)
        if warning and worker == 0:  # once every port is bound: a port taken is one line
            log.warning("%s", warning)
        blocklist = blocklist_status(config)
        if blocklist and worker == 0:
            log.log(blocklist[0], "%s", blocklist[1])
        stop = asyncio.Event()
        reload_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
        tasks.append(asyncio.create_task(tls.run_renewals() if worker == 0 else tls.follow()))
        tasks.append(asyncio.create_task(
            _reloads(reload_requested, issuer, tls, worker, store, clock, ocsp, admin,
                     lambda: load is not None and reload_config(settings, load))))
        if worker == 0:  # one process per host: the archive is this host's files
            keys = ArchivedKeys(
                archive_dir(config.ca.intermediate_cert), store, clock, issuer,
                archived_key_retention(config),
                passphrase=lambda: intermediate_passphrase(
                    config.ca.intermediate_key_passphrase_file
                ),
                pkcs11_module=config.ca.pkcs11_module,
                pin_from=_uri(config.ca.intermediate_key),
            )
            tasks.append(asyncio.create_task(keys.run()))
        if worker:
            await stop.wait()
            await stop_gracefully(runners, acme, settings)
            return
        base = config.server.base_url
        print(f"acme-ca {__version__} serving {base} (listening on {config.server.listen}; "
              f"{_processes(config)})")
        print(f"  ACME directory:   {base}/directory")
        print(f"  root certificate: {config.ca.root_cert}  (trust it: acme-ca trust)")
        print(f"  CA chain:         {base}/roots/chain.pem")
        print(f"  health:           {base}/readyz")
        crl_url = publication(config).crl_url(issuer.current.fingerprint)
        print(f"  CRL:              {crl_url}  (listening on {config.revocation.http_listen})")
        if ocsp is not None:
            print(f"  OCSP:             {publication(config).ocsp_url()}")
        if config.admin.listen is not None:
            print(f"  admin:            {admin_url(config)}/metrics  (listening on "
                  f"{config.admin.listen}; admin certificates only: acme-ca admin-cert)")
        sys.stdout.flush()
        await stop.wait()
        await stop_gracefully(runners, acme, settings)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for runner in reversed(runners):
            await runner.cleanup()
        await store.close()


async def _listen(runners: list[web.AppRunner], app: web.Application, listen: str,
                  config: Config, context: ssl.SSLContext | None, setting: str = "") -> None:
    """Serve ``app`` on ``listen`` ("host:port"; HTTPS with ``context``), sharing the
    port with the other workers; its runner joins ``runners`` (cleaned up at the end).
    A port already taken is a one-line error naming the setting."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=HANDLERS_GRACE)
    await runner.setup()
    runners.append(runner)
    host, port = parse_host_port(listen)
    site = web.TCPSite(runner, host, port, ssl_context=context,
                       reuse_port=config.server.workers > 1 or None)
    try:
        await site.start()
    except OSError as exc:
        raise AcmeCaError(f"cannot listen on {listen}{setting}: {exc.strerror}") from None


async def _reloads(requested: asyncio.Event, issuer: IssuerHolder, tls: ServerTls,
                   worker: int, store: Store, clock: Clock,
                   ocsp: OcspResponder | None = None,
                   admin: ssl.SSLContext | None = None,
                   reload_settings: Callable[[], bool] = lambda: False) -> None:
    """SIGHUP: the configuration (``cli/reload.py``), then the intermediate."""
    while True:
        await requested.wait()
        requested.clear()
        reload_settings()
        if await checked_reload(issuer, store, clock.now()):
            log.info("switched to intermediate %s", issuer.current.fingerprint[:16])
            if ocsp is not None:  # worker 0 issues the new one's responder now, the
                ocsp.responders.wake()  # others load it (not at their next period)
            if admin is not None:  # admin certificates the new intermediate signs
                admin.load_verify_locations(cadata=admin_issuers_pem(issuer.current))
            if worker:
                continue  # worker 0 re-issues the TLS certificate; this one follows it
            try:
                await tls.renew()
            except AcmeCaError as exc:
                log.error("could not re-issue the server TLS certificate: %s", exc)
        else:
            log.info("reload: intermediate unchanged")
