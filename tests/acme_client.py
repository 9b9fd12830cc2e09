"""A small ACME client for in-process tests: signs JWS with cryptography, talks to a
TestClient. It does exactly what it is told, so tests can also send what real clients
never would."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

BASE = "https://ca.test:8555"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> dict[str, str]:
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.public_key().public_numbers()
        return {"kty": "RSA", "n": b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
                "e": b64(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big"))}
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    crv = {256: "P-256", 384: "P-384", 521: "P-521"}[key.curve.key_size]
    return {"kty": "EC", "crv": crv, "x": b64(numbers.x.to_bytes(size, "big")),
            "y": b64(numbers.y.to_bytes(size, "big"))}


def sign(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, protected: dict[str, Any],
         payload: bytes | None) -> dict[str, str]:
    """A flattened JWS (RFC 7515 7.2.2); payload None means POST-as-GET (empty)."""
    p64 = b64(json.dumps(protected).encode())
    body64 = "" if payload is None else b64(payload)
    signing_input = f"{p64}.{body64}".encode()
    if isinstance(key, rsa.RSAPrivateKey):
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        algorithm = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}
        der = key.sign(signing_input, ec.ECDSA(algorithm[key.curve.key_size]))
        r, s = decode_dss_signature(der)
        size = (key.curve.key_size + 7) // 8
        signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return {"protected": p64, "payload": body64, "signature": b64(signature)}


def alg_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]


def make_csr(names: list[str], key: ec.EllipticCurvePrivateKey | None = None,
             common_name: str | None = None) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
                        if common_name else [])
    csr = (x509.CertificateSigningRequestBuilder().subject_name(subject)
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.DER), key


@dataclass
class Response:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def problem_type(self) -> str:
        return str(self.json().get("type", "")).rsplit(":", 1)[-1]


@dataclass
class AcmeTestClient:
    http: TestClient
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str | None = None
    nonce: str | None = None

    @staticmethod
    def path(url: str) -> str:
        assert url.startswith(BASE), url
        return url[len(BASE):]

    async def fresh_nonce(self) -> str:
        response = await self.http.head("/acme/new-nonce")
        return response.headers["Replay-Nonce"]

    async def post(self, url: str, payload: Any = None, *, use_jwk: bool = False,
                   key: Any = None, protected: dict[str, Any] | None = None,
                   raw: dict[str, str] | None = None) -> Response:
        """POST a JWS; payload None is POST-as-GET, bytes are sent as they are."""
        key = key or self.key
        nonce = self.nonce or await self.fresh_nonce()
        self.nonce = None
        header: dict[str, Any] = {"alg": alg_of(key), "nonce": nonce, "url": url}
        if use_jwk or self.kid is None:
            header["jwk"] = jwk_of(key)
        else:
            header["kid"] = self.kid
        header.update(protected or {})
        body_bytes = payload if isinstance(payload, bytes) else (
            None if payload is None else json.dumps(payload).encode())
        jws = raw or sign(key, header, body_bytes)
        response = await self.http.post(self.path(url), data=json.dumps(jws),
                                        headers={"Content-Type": "application/jose+json"})
        self.nonce = response.headers.get("Replay-Nonce")
        return Response(response.status, response.headers, await response.read())

    async def directory(self) -> dict[str, Any]:
        response = await self.http.get("/directory")
        return await response.json()

    async def new_account(self, **payload: Any) -> Response:
        payload.setdefault("termsOfServiceAgreed", True)
        response = await self.post(f"{BASE}/acme/new-account", payload, use_jwk=True)
        if response.status in (200, 201):
            self.kid = response.headers["Location"]
        return response

    async def new_order(self, *names: str, **extra: Any) -> Response:
        identifiers = [{"type": "dns", "value": n} for n in names]
        return await self.post(f"{BASE}/acme/new-order", {"identifiers": identifiers, **extra})

    def thumbprint(self) -> str:
        jwk = jwk_of(self.key)
        members = {k: jwk[k] for k in sorted(jwk)}
        digest = hashes.Hash(hashes.SHA256())
        digest.update(json.dumps(members, separators=(",", ":")).encode())
        return b64(digest.finalize())

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.thumbprint()}"
