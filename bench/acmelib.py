"""certbot's ACME library (``acme``, with ``josepy`` and ``requests``) as the client.

``run`` drives a server as certbot drives it, with C concurrent clients and N
issuances. Each client is one ``acme.client.ClientV2`` over one ``ClientNetwork`` (one
requests session: keep-alive, each response's Replay-Nonce kept for the next POST) and
one account, registered before the clock starts. Each issuance makes certbot's 7 POSTs:
newOrder and the POST-as-GET of its authorization (``ClientV2.new_order``), the
challenge POST (``answer_challenge``), POST-as-GET of the authorization until it is no
longer pending (``poll_authorizations``: the first at once), the finalize POST
(``begin_finalization``), POST-as-GET of the order until valid (``poll_finalization``:
it sleeps before the first), and POST-as-GET of the certificate. Where certbot sleeps
1 s between polls, this sleeps ``poll_s`` (0.05 s by default, as issue 15's harness).

The clients run in a child process (``python -m bench.acmelib``), not as threads of
the bench, whose event loop runs the http-01 responder. Measured against acme-ca
(n=200, C=8, names over DNS, thread and process alternating; two sessions of 2 and 4
runs each, on the shared 2-core machine at load average 7-9): the loop's lag (a 2 ms
sleep's overshoot) had a p50 of 0.24-0.56 ms with 8 library threads in the bench's
process, 0.19-0.32 ms with them in a child (in each session, every child run below
every thread run); issuances/s (17.5-25.4 against 16.1-23.1), server CPU per issuance
(12.5-17.7 against 13.7-21.6 ms) and the validation step's p50 (11-19 against 10-21
ms) did not differ beyond the noise. The child keeps the responder's timing free of
the clients' GIL at no measured cost. The child tells the bench each token's key
authorization on its stdout ("T token keyauth") before it answers the challenge; the
responder waits for a token it does not know yet (``Http01Responder.wait_s``), so that
a line still in the pipe is not a 404.

Steps are timed, and the chain downloaded is checked (``check_chain``: its leaf
names the order's name), as bench/loadgen.py does, with one difference: ``order`` holds
newOrder and the authorization's POST-as-GET (``new_order`` makes both), ``challenge``
only the challenge POST. ``polls`` counts every POST-as-GET after the challenge and
after finalize (at least 2 per issuance, as certbot).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.client import AcmeError
from bench.http01 import Http01Responder
from bench.loadgen import STEPS, RunConfig, RunStats, check_chain, sample_groups
from bench.programs import last_line

DEFAULT_POLL_S = 0.05


# acme, josepy and requests are imported where used: they are test dependencies of the
# project, and the rest of the bench (the lean generator) runs without them.


def _error_kind(exc: BaseException) -> str:
    """A name for the error table, as bench/client.py's AcmeError kinds."""
    import requests
    from acme import errors, messages

    if isinstance(exc, AcmeError):  # check_chain's, as the lean generator counts it
        return exc.kind
    if isinstance(exc, messages.Error):
        return exc.code or "acme-error"
    if isinstance(exc, errors.ValidationError):
        for authzr in exc.failed_authzrs:
            for chall in authzr.body.challenges:
                if chall.error is not None:
                    return "invalid-authz:" + (chall.error.code or "unknown")
        return "invalid-authz"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"connection:{type(exc).__name__}"
    return f"exception:{type(exc).__name__}"


class _Client:
    """One of the C clients: its ClientNetwork, account and certificate key."""

    def __init__(self, job: dict[str, Any]) -> None:
        import josepy as jose
        from acme import client, messages
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        counts = Counter[str]()

        class Network(client.ClientNetwork):  # counts what it sends
            def _send_request(self, method: str, url: str, *args: Any,
                              **kwargs: Any) -> Any:
                counts["requests"] += 1
                counts["nonce_fetches"] += method == "HEAD"
                return super()._send_request(method, url, *args, **kwargs)

            def _post_once(self, *args: Any, **kwargs: Any) -> Any:
                try:
                    return super()._post_once(*args, **kwargs)
                except messages.Error as exc:
                    counts["bad_nonce_retries"] += exc.code == "badNonce"
                    raise

        self.counts = counts
        key = ec.generate_private_key(ec.SECP256R1())
        self.net = Network(jose.JWKEC(key=key), alg=jose.ES256,
                           verify_ssl=job["ca_bundle"] or True, user_agent="bench-acme-lib",
                           timeout=job["timeout"])
        self.acme = client.ClientV2(client.ClientV2.get_directory(job["directory"], self.net),
                                    self.net)
        self.acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        self.cert_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())

    def issue(self, name: str, poll_s: float, tell: Any) -> tuple[dict[str, float], int]:
        """One issuance as certbot makes it; its step timings and polls."""
        from acme import challenges, crypto_util, errors, messages

        acme, polls = self.acme, 0
        csr = crypto_util.make_csr(self.cert_key, [name])
        t0 = time.perf_counter()
        orderr = acme.new_order(csr)
        t1 = time.perf_counter()
        challenge_s = validation_s = 0.0
        for authzr in orderr.authorizations:
            ta = time.perf_counter()
            chall = next(c for c in authzr.body.challenges
                         if isinstance(c.chall, challenges.HTTP01))
            response, validation = chall.response_and_validation(self.net.key)
            tell(chall.chall.encode("token"), validation)
            acme.answer_challenge(chall, response)
            tb = time.perf_counter()
            while True:
                authzr, _ = acme.poll(authzr)
                polls += 1
                if authzr.body.status != messages.STATUS_PENDING:
                    break
                time.sleep(poll_s)
            if authzr.body.status != messages.STATUS_VALID:
                raise errors.ValidationError([authzr])
            challenge_s += tb - ta
            validation_s += time.perf_counter() - tb
        t2 = time.perf_counter()
        orderr = acme.begin_finalization(orderr)
        while True:
            time.sleep(poll_s)
            body = messages.Order.from_json(acme._post_as_get(orderr.uri).json())
            polls += 1
            if body.status == messages.STATUS_VALID and body.certificate is not None:
                break
            if body.status == messages.STATUS_INVALID:
                raise errors.IssuanceError(body.error)
        t3 = time.perf_counter()
        check_chain(acme._post_as_get(body.certificate).content, name)
        t4 = time.perf_counter()
        return {"order": t1 - t0, "challenge": challenge_s, "validation": validation_s,
                "finalize": t3 - t2, "download": t4 - t3, "total": t4 - t0}, polls


def drive(job: dict[str, Any], tell: Any, ready: Any) -> dict[str, Any]:
    """Register C clients, call ``ready()`` (it returns when the clock starts), issue
    the job's names with C threads; the result as a JSON-able dict."""
    c = max(1, min(job["c"], len(job["names"])))
    with ThreadPoolExecutor(c) as pool:  # a failed registration raises here: no run
        clients = list(pool.map(lambda _: _Client(job), range(c)))
    for cl in clients:
        cl.counts.clear()
    todo = list(reversed(job["names"]))
    steps: dict[str, list[float]] = {s: [] for s in STEPS}
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    totals = {"ok": 0, "polls": 0}
    lock = threading.Lock()

    def worker(cl: _Client) -> None:
        while True:
            with lock:
                if not todo:
                    return
                name = todo.pop()
            try:
                timings, polls = cl.issue(name, job["poll_s"], tell)
            except Exception as exc:  # every failure is counted by kind
                with lock:
                    kind = _error_kind(exc)
                    errors[kind] += 1
                    examples.setdefault(kind, str(exc)[:300])
                continue
            with lock:
                totals["ok"] += 1
                totals["polls"] += polls
                for step, seconds in timings.items():
                    steps[step].append(seconds)

    ready()
    cpu0, start = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(c) as pool:
        list(pool.map(worker, clients))
    counts = sum((cl.counts for cl in clients), Counter[str]())
    return {"elapsed_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu0,
            "steps": steps, "errors": dict(errors), "examples": examples, **totals,
            "requests": counts["requests"], "nonce_fetches": counts["nonce_fetches"],
            "bad_nonce_retries": counts["bad_nonce_retries"]}


def _child() -> None:
    """``python -m bench.acmelib``: the job on stdin's first line; "READY" when every
    account is registered, then waits for "GO"; "T token keyauth" lines; "R result"."""
    job = json.loads(sys.stdin.readline())
    out = threading.Lock()

    def say(line: str) -> None:
        with out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def ready() -> None:
        say("READY")
        if sys.stdin.readline().strip() != "GO":
            sys.exit(1)

    result = drive(job, lambda token, keyauth: say(f"T {token} {keyauth}"), ready)
    say("R " + json.dumps(result))


async def run(config: RunConfig, responder: Http01Responder, poll_s: float = DEFAULT_POLL_S,
              stderr: Path | None = None) -> RunStats:
    """One run of ``config.n`` issuances by ``config.c`` clients of the library in a child
    process; server CPU sampled around it (config.measure), as loadgen.run does."""
    job = {"directory": config.directory, "c": config.c, "poll_s": poll_s,
           "ca_bundle": str(config.ca_bundle) if config.ca_bundle else None,
           "timeout": config.timeout, "names": [config.names.format(i=i) for i in range(config.n)]}
    stats = RunStats(config)
    log = stderr.open("wb") if stderr else None
    setup = time.perf_counter()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.acmelib", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=log or asyncio.subprocess.DEVNULL,
        limit=1 << 24)
    assert child.stdin is not None and child.stdout is not None
    wait_s, responder.wait_s = responder.wait_s, max(responder.wait_s, 5.0)
    served_before, result, tokens = responder.served, None, []
    try:
        child.stdin.write((json.dumps(job) + "\n").encode())
        await child.stdin.drain()
        cpu0 = 0.0
        while True:
            try:
                line = await asyncio.wait_for(child.stdout.readline(), config.stall_s)
            except TimeoutError:
                stats.errors["stalled"] = config.n
                stats.examples["stalled"] = f"nothing from the clients for {config.stall_s:g} s"
                break
            if not line:
                status = await child.wait()
                stats.errors["client-exited"] = config.n
                why = last_line(stderr) if stderr else "(stderr not kept)"
                stats.examples["client-exited"] = f"the clients exited {status}: {why}"
                break
            word, _, rest = line.decode().rstrip("\n").partition(" ")
            if word == "T":
                token, _, keyauth = rest.partition(" ")
                responder.add(token, keyauth)
                tokens.append(token)
            elif word == "READY":
                stats.setup_s = time.perf_counter() - setup
                stats.before = sample_groups(config.measure)
                cpu0 = time.process_time()
                child.stdin.write(b"GO\n")
                await child.stdin.drain()
            elif word == "R":
                result = json.loads(rest)
                stats.after = sample_groups(config.measure)
                stats.client_cpu_s = time.process_time() - cpu0 + result["cpu_s"]
                break
    finally:
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        await child.wait()
        if log:
            log.close()
        responder.wait_s = wait_s
        for token in tokens:
            responder.remove(token)
    if result is not None:
        stats.ok, stats.elapsed_s, stats.polls = result["ok"], result["elapsed_s"], result["polls"]
        stats.steps = result["steps"]
        stats.errors.update(result["errors"])
        stats.examples.update(result["examples"])
        stats.requests = result["requests"]
        stats.nonce_fetches = result["nonce_fetches"]
        stats.bad_nonce_retries = result["bad_nonce_retries"]
    stats.validations_served = responder.served - served_before
    return stats


if __name__ == "__main__":
    _child()
