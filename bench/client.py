"""A lean asyncio ACME (RFC 8555) client for load generation.

One ``AcmeClient`` holds one aiohttp session (keep-alive connections, trusting only the
given CA bundle) and one pool of nonces shared by every worker: each response's
Replay-Nonce is kept and used by the next request, so newNonce is asked only when the
pool is empty. A ``badNonce`` answer is retried once with a fresh nonce. JWS signing
(ES256 with P-256 keys, RS256 with RSA 2048 keys) uses ``cryptography`` directly.

Every failure is an ``AcmeError`` whose ``kind`` names it for the error table: the
ACME problem type without its URN prefix (``badNonce``, ``rateLimited``), ``http-NNN``
for an answer that is not a problem document, ``timeout`` or ``connection:<Name>``.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

JOSE = "application/jose+json"
PROBLEM_PREFIX = "urn:ietf:params:acme:error:"
KEY_TYPES = ("ec256", "rsa2048")
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _int_bytes(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or (value.bit_length() + 7) // 8, "big")


def generate_key(kind: str) -> PrivateKey:
    """A new private key: ``ec256`` (ECDSA P-256) or ``rsa2048``."""
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unknown key type {kind!r} (choose from {', '.join(KEY_TYPES)})")


class JwsKey:
    """An account key: its JWK, RFC 7638 thumbprint, JWS algorithm and signer."""

    def __init__(self, key: PrivateKey) -> None:
        self.key = key
        if isinstance(key, rsa.RSAPrivateKey):
            pub = key.public_key().public_numbers()
            self.alg = "RS256"
            self.jwk = {"e": b64(_int_bytes(pub.e)), "kty": "RSA", "n": b64(_int_bytes(pub.n))}
        else:
            if key.curve.name != "secp256r1":
                raise ValueError("only P-256 EC keys are supported")
            point = key.public_key().public_numbers()
            self.alg = "ES256"
            self.jwk = {
                "crv": "P-256",
                "kty": "EC",
                "x": b64(_int_bytes(point.x, 32)),
                "y": b64(_int_bytes(point.y, 32)),
            }
        self.thumbprint = b64(hashlib.sha256(_dumps(self.jwk)).digest())

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return _int_bytes(r, 32) + _int_bytes(s, 32)

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.thumbprint}"


@dataclass
class Account:
    key: JwsKey
    kid: str


class AcmeError(Exception):
    """A failed request or a protocol outcome the generator did not expect."""

    def __init__(self, kind: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail
        self.status = status


@dataclass
class Reply:
    status: int
    headers: Any  # aiohttp's CIMultiDictProxy
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def location(self) -> str | None:
        value = self.headers.get("Location")
        return str(value) if value else None

    def retry_after(self) -> float | None:
        """Retry-After in seconds (delta-seconds or an HTTP date), None when absent."""
        value = self.headers.get("Retry-After")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def csr_der(names: list[str], key: PrivateKey) -> bytes:
    """A CSR for ``names`` (SANs, no subject), signed with ``key``."""
    san = x509.SubjectAlternativeName([x509.DNSName(n) for n in names])
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    csr = builder.add_extension(san, critical=False).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def _problem_error(reply: Reply, url: str) -> AcmeError:
    kind, detail = f"http-{reply.status}", reply.body[:200].decode("utf-8", "replace")
    if reply.headers.get("Content-Type", "").startswith("application/problem+json"):
        try:
            doc = reply.json()
            kind = str(doc.get("type", kind)).removeprefix(PROBLEM_PREFIX)
            detail = str(doc.get("detail", ""))
        except (ValueError, AttributeError):
            pass
    return AcmeError(kind, f"{detail} (HTTP {reply.status} from {url})", reply.status)


class AcmeClient:
    """ACME requests against one directory, shared by all workers of a run."""

    def __init__(
        self,
        directory_url: str,
        ca_bundle: Path | None,
        *,
        connections: int = 100,
        timeout: float = 30.0,
    ) -> None:
        self.directory_url = directory_url
        self._ca_bundle = ca_bundle
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._nonces: deque[str] = deque()
        self.directory: dict[str, Any] = {}
        self.requests = 0
        self.nonce_fetches = 0
        self.bad_nonce_retries = 0

    async def __aenter__(self) -> AcmeClient:
        context = ssl.create_default_context(
            cafile=str(self._ca_bundle) if self._ca_bundle else None
        )
        connector = aiohttp.TCPConnector(
            ssl=context, limit=self._connections, family=socket.AF_INET
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": "acme-ca-bench/1"},
        )
        try:
            reply = await self._send("GET", self.directory_url)
            if reply.status != 200:
                raise _problem_error(reply, self.directory_url)
            self.directory = reply.json()
        except BaseException:
            await self._session.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(self, method: str, url: str, body: bytes | None = None) -> Reply:
        assert self._session is not None, "use AcmeClient as an async context manager"
        headers = {"Content-Type": JOSE} if body is not None else None
        self.requests += 1
        try:
            async with self._session.request(method, url, data=body, headers=headers) as resp:
                reply = Reply(resp.status, resp.headers, await resp.read())
        except TimeoutError:
            raise AcmeError("timeout", f"{method} {url}") from None
        except aiohttp.ClientError as exc:
            raise AcmeError(f"connection:{type(exc).__name__}", f"{method} {url}: {exc}") from None
        nonce = reply.headers.get("Replay-Nonce")
        if nonce:
            self._nonces.append(nonce)
        return reply

    async def _nonce(self) -> str:
        if self._nonces:
            return self._nonces.popleft()
        self.nonce_fetches += 1
        url = self.directory["newNonce"]
        reply = await self._send("HEAD", url)
        if reply.status not in (200, 204) or not self._nonces:
            raise _problem_error(reply, url)
        return self._nonces.popleft()

    def _jws(self, url: str, payload: Any, key: JwsKey, kid: str | None, nonce: str) -> bytes:
        protected: dict[str, Any] = {"alg": key.alg, "nonce": nonce, "url": url}
        if kid is None:
            protected["jwk"] = key.jwk
        else:
            protected["kid"] = kid
        p64 = b64(_dumps(protected))
        body64 = "" if payload is None else b64(_dumps(payload))
        signature = key.sign(f"{p64}.{body64}".encode("ascii"))
        return _dumps({"protected": p64, "payload": body64, "signature": b64(signature)})

    async def post(
        self, url: str, payload: Any, key: JwsKey, kid: str | None, *, ok: tuple[int, ...]
    ) -> Reply:
        """A signed POST (payload None: POST-as-GET); a badNonce is retried once."""
        for attempt in (1, 2):
            body = self._jws(url, payload, key, kid, await self._nonce())
            reply = await self._send("POST", url, body)
            if reply.status in ok:
                return reply
            error = _problem_error(reply, url)
            if error.kind != "badNonce" or attempt == 2:
                raise error
            self.bad_nonce_retries += 1
        raise AssertionError("unreachable")

    async def new_account(self, key: JwsKey) -> Account:
        url = self.directory["newAccount"]
        payload = {"termsOfServiceAgreed": True, "contact": []}
        reply = await self.post(url, payload, key, None, ok=(200, 201))
        if not reply.location:
            raise AcmeError("no-location", f"newAccount answered without Location ({url})")
        return Account(key, reply.location)

    async def account_post(
        self, account: Account, url: str, payload: Any = None, ok: tuple[int, ...] = (200,)
    ) -> Reply:
        return await self.post(url, payload, account.key, account.kid, ok=ok)


@dataclass(frozen=True)
class PollPolicy:
    """How the generator waits between polls of a pending resource.

    Its own backoff starts at ``start`` seconds and doubles up to ``ceiling``. A
    Retry-After from the server is honoured, but never beyond ``retry_after_cap``
    seconds (``0`` ignores Retry-After, so every server is polled alike).
    """

    start: float = 0.01
    ceiling: float = 0.25
    retry_after_cap: float = 0.1
    deadline: float = 60.0


async def poll(
    client: AcmeClient,
    account: Account,
    url: str,
    pending: frozenset[str],
    hint: float | None,
    policy: PollPolicy,
) -> tuple[dict[str, Any], int]:
    """Wait, then POST-as-GET ``url`` until its status leaves ``pending``.

    ``hint`` is the Retry-After of the response that started the wait. Returns the
    object and the number of polls made.
    """
    wait, polls, ends = policy.start, 0, time.monotonic() + policy.deadline
    while True:
        delay = wait if hint is None else max(wait, min(hint, policy.retry_after_cap))
        if time.monotonic() + delay > ends:
            raise AcmeError("poll-timeout", f"{url} still pending after {policy.deadline:g}s")
        await asyncio.sleep(delay)
        wait = min(wait * 2, policy.ceiling)
        reply = await client.account_post(account, url)
        polls += 1
        obj = reply.json()
        if obj.get("status") not in pending:
            return obj, polls
        hint = reply.retry_after()
