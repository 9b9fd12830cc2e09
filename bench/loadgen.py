"""One load run: register accounts, then issue N certificates with C workers.

Each issuance goes through the whole protocol and is timed per step:

- ``order``: newOrder;
- ``challenge``: POST-as-GET of the authorization, the key authorization handed to the
  responder, and the challenge POST;
- ``validation``: from the challenge answer to the authorization being valid (polls);
- ``finalize``: the finalize POST with a CSR, and polls of the order until valid;
- ``download``: POST-as-GET of the certificate chain (checked: PEM, the right name);
- ``total``: newOrder to the chain in hand (CSR building is done before, not timed).

Account registration happens before the clock starts. CPU (utime + stime of each
process tree, including reaped children) and peak RSS (VmHWM) come from /proc, for each
group of processes the run is told to measure: ``server`` (acme-ca's replicas, or
Pebble), and beside it ``database`` (PostgreSQL's backends) and ``proxy`` (haproxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from bench.client import (
    Account,
    AcmeClient,
    AcmeError,
    JwsKey,
    PollPolicy,
    PrivateKey,
    b64,
    csr_der,
    generate_key,
    poll,
)
from bench.http01 import Http01Responder

STEPS = ("order", "challenge", "validation", "finalize", "download", "total")
DEFAULT_NAMES = "{i}.bench.bluerobin.local"

Processes = Callable[[], Iterable[int]]
"""One measured group: its root pids (each counted with its descendants), looked up
again at each sample, since a database's backends come and go."""


@dataclass
class RunConfig:
    directory: str
    ca_bundle: Path | None = None
    http_port: int = 0
    n: int = 200
    c: int = 8
    key: str = "ec256"
    accounts: int | None = None  # default: one per worker
    measure: dict[str, Processes] = field(default_factory=dict)  # group -> its pids
    names: str = DEFAULT_NAMES
    poll: PollPolicy = field(default_factory=PollPolicy)
    timeout: float = 30.0
    stall_s: float = 20.0  # abort the run when no issuance ends for this long
    label: str = ""


@dataclass
class ProcSample:
    cpu_s: float
    hwm_kb: int
    rss_kb: int
    processes: int


@dataclass
class RunStats:
    config: RunConfig
    ok: int = 0
    elapsed_s: float = 0.0
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    polls: int = 0
    reused_authz: int = 0
    requests: int = 0
    bad_nonce_retries: int = 0
    nonce_fetches: int = 0
    client_cpu_s: float = 0.0
    before: dict[str, ProcSample] = field(default_factory=dict)  # by measured group
    after: dict[str, ProcSample] = field(default_factory=dict)
    validations_served: int = 0
    setup_s: float = 0.0

    def error(self, exc: AcmeError) -> None:
        self.errors[exc.kind] += 1
        self.examples.setdefault(exc.kind, exc.detail[:300])


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(
                    int(entry.name)
                )
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def sample_processes(pids: Iterable[int]) -> ProcSample:
    """CPU seconds (utime+stime+cutime+cstime over the live trees) and memory (kB), summed
    over the trees of ``pids``; a root that has gone raises, a descendant is skipped."""
    tick = os.sysconf("SC_CLK_TCK")
    roots = list(pids)
    members = dict.fromkeys(m for pid in roots for m in process_tree(pid))
    cpu, hwm, rss, count = 0, 0, 0, 0
    for member in members:
        try:
            fields = _stat_fields(member)
            cpu += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
            hwm += _status_kb(member, "VmHWM")
            rss += _status_kb(member, "VmRSS")
            count += 1
        except (OSError, ValueError, IndexError):
            if member in roots:
                raise
    return ProcSample(cpu / tick, hwm, rss, count)


def sample_groups(measure: dict[str, Processes]) -> dict[str, ProcSample]:
    """Each group's CPU and memory now (``RunConfig.measure``), before and after a run
    of any client (here, bench/acmelib.py, bench/programs.py)."""
    return {group: sample_processes(pids()) for group, pids in measure.items()}


class _Run:
    def __init__(self, config: RunConfig, client: AcmeClient, responder: Http01Responder) -> None:
        self.config = config
        self.client = client
        self.responder = responder
        self.stats = RunStats(config)
        self._next = 0
        self.last_progress = time.monotonic()

    async def register(self, count: int) -> list[Account]:
        keys = await asyncio.to_thread(
            lambda: [generate_key(self.config.key) for _ in range(count)]
        )
        gate = asyncio.Semaphore(max(1, self.config.c))

        async def one(key: PrivateKey) -> Account:
            async with gate:
                return await self.client.new_account(JwsKey(key))

        return list(await asyncio.gather(*(one(k) for k in keys)))

    async def worker(self, account: Account, cert_key: PrivateKey) -> None:
        while self._next < self.config.n:
            index = self._next
            self._next += 1
            name = self.config.names.format(i=index)
            try:
                timings = await self.issue(account, cert_key, name)
            except AcmeError as exc:
                self.stats.error(exc)
                continue
            except (ValueError, KeyError, TypeError) as exc:  # a malformed answer
                self.stats.error(AcmeError(f"malformed:{type(exc).__name__}", str(exc)))
                continue
            finally:
                self.last_progress = time.monotonic()
            self.stats.ok += 1
            for step, seconds in timings.items():
                self.stats.steps[step].append(seconds)

    async def issue(self, account: Account, cert_key: PrivateKey, name: str) -> dict[str, float]:
        client, policy, stats = self.client, self.config.poll, self.stats
        csr = b64(csr_der([name], cert_key))
        t0 = time.perf_counter()
        reply = await client.account_post(
            account,
            client.directory["newOrder"],
            {"identifiers": [{"type": "dns", "value": name}]},
            ok=(201,),
        )
        order, order_url = reply.json(), reply.location
        if not order_url:
            raise AcmeError("no-location", "newOrder answered without Location")
        t1 = time.perf_counter()
        timings = {"order": t1 - t0}
        challenge_s = validation_s = 0.0
        for authz_url in order["authorizations"]:
            ta = time.perf_counter()
            authz = (await client.account_post(account, authz_url)).json()
            if authz["status"] == "valid":
                stats.reused_authz += 1
                continue
            chall = next((c for c in authz["challenges"] if c["type"] == "http-01"), None)
            if chall is None:
                raise AcmeError("no-http-01", f"{authz_url} offers no http-01 challenge")
            token = chall["token"]
            self.responder.add(token, account.key.key_authorization(token))
            try:
                reply = await client.account_post(account, chall["url"], {})
                tb = time.perf_counter()
                status = reply.json().get("status")
                if status != "valid":
                    authz, polls = await poll(
                        client,
                        account,
                        authz_url,
                        frozenset({"pending"}),
                        reply.retry_after(),
                        policy,
                    )
                    stats.polls += polls
                    status = authz["status"]
            finally:
                self.responder.remove(token)
            if status != "valid":
                raise AcmeError(_invalid_kind(authz), f"authorization {authz_url} is {status}")
            tc = time.perf_counter()
            challenge_s += tb - ta
            validation_s += tc - tb
        if challenge_s:
            timings["challenge"], timings["validation"] = challenge_s, validation_s
        t2 = time.perf_counter()
        reply = await client.account_post(account, order["finalize"], {"csr": csr})
        order = reply.json()
        if order.get("status") in ("processing", "ready"):
            order, polls = await poll(
                client,
                account,
                order_url,
                frozenset({"processing", "ready"}),
                reply.retry_after(),
                policy,
            )
            stats.polls += polls
        if order.get("status") != "valid" or not order.get("certificate"):
            raise AcmeError(f"order-{order.get('status')}", f"{order_url}: {order.get('error')}")
        t3 = time.perf_counter()
        reply = await client.account_post(account, order["certificate"])
        check_chain(reply.body, name)
        t4 = time.perf_counter()
        timings.update(finalize=t3 - t2, download=t4 - t3, total=t4 - t0)
        return timings


def _invalid_kind(authz: dict[str, object]) -> str:
    for chall in authz.get("challenges") or []:  # type: ignore[attr-defined]
        error = chall.get("error") if isinstance(chall, dict) else None
        if isinstance(error, dict) and error.get("type"):
            return "invalid-authz:" + str(error["type"]).rsplit(":", 1)[-1]
    return "invalid-authz"


def check_chain(body: bytes, name: str) -> None:
    """``body`` is a PEM chain whose leaf names ``name``; else AcmeError("bad-certificate")."""
    if not body.startswith(b"-----BEGIN CERTIFICATE-----"):
        raise AcmeError("bad-certificate", f"not a PEM chain: {body[:60]!r}")
    leaf = x509.load_pem_x509_certificate(body)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if name not in sans.get_values_for_type(x509.DNSName):
        raise AcmeError("bad-certificate", f"leaf is not for {name}")


async def _watchdog(state: _Run, tasks: list[asyncio.Task[None]], stall_s: float) -> None:
    """Cancel the workers when no issuance has ended for ``stall_s`` (a hung server)."""
    while True:
        await asyncio.sleep(min(1.0, stall_s / 4))
        if time.monotonic() - state.last_progress > stall_s:
            stats = state.stats
            left = state.config.n - stats.ok - sum(stats.errors.values())
            for task in tasks:
                task.cancel()
            stats.error(AcmeError("stalled", f"no issuance ended for {stall_s:g} s: run aborted"))
            stats.errors["stalled"] = left  # every issuance not finished counts
            return


async def run(config: RunConfig, responder: Http01Responder | None = None) -> RunStats:
    """One run against ``config.directory``; the responder is started here if not given."""
    async with contextlib.AsyncExitStack() as stack:
        if responder is None:
            responder = await stack.enter_async_context(Http01Responder(config.http_port))
        client = AcmeClient(
            config.directory,
            config.ca_bundle,
            connections=max(100, 2 * config.c),
            timeout=config.timeout,
        )
        await stack.enter_async_context(client)
        state = _Run(config, client, responder)
        setup = time.perf_counter()
        workers = max(1, min(config.c, config.n))
        accounts = await state.register(max(1, config.accounts or workers))
        cert_keys = await asyncio.to_thread(
            lambda: [generate_key(config.key) for _ in range(workers)]
        )
        stats = state.stats
        stats.setup_s = time.perf_counter() - setup
        served_before = responder.served
        base_requests = client.requests
        stats.before = sample_groups(config.measure)
        cpu0, start = time.process_time(), time.perf_counter()
        state.last_progress = time.monotonic()
        tasks = [
            asyncio.create_task(state.worker(accounts[w % len(accounts)], cert_keys[w]))
            for w in range(workers)
        ]
        watchdog = asyncio.create_task(_watchdog(state, tasks, config.stall_s))
        await asyncio.gather(*tasks, return_exceptions=True)
        watchdog.cancel()
        stats.elapsed_s = time.perf_counter() - start
        stats.client_cpu_s = time.process_time() - cpu0
        stats.after = sample_groups(config.measure)
        stats.requests = client.requests - base_requests
        stats.bad_nonce_retries = client.bad_nonce_retries
        stats.nonce_fetches = client.nonce_fetches
        stats.validations_served = responder.served - served_before
        return stats
