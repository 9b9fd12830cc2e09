"""A JWS builder and the callbacks verify_jws needs, for the JWS pipeline tests
(test_jws, test_jws_format, test_jws_key_change, test_jws_hostile); the ``server``
fixture (a FakeServer) is in conftest.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from acme_ca.api.jws import AccountKey, VerifiedRequest, verify_jws
from acme_ca.domain.problems import AcmeProblem, ProblemType

URL = "https://ca.example:8555/acme/new-order"
CT = "application/jose+json"
KID = "https://ca.example:8555/acme/acct/acct1"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


RSA_KEY = rsa_key()
PRIVATE_KEYS: dict[str, Any] = {
    "RS256": RSA_KEY,
    "PS256": RSA_KEY,
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "ES384": ec.generate_private_key(ec.SECP384R1()),
    "ES512": ec.generate_private_key(ec.SECP521R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate(),
}
OTHER_EC = ec.generate_private_key(ec.SECP256R1())


def public_jwk(private: Any) -> dict[str, str]:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
    if isinstance(private, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=private.public_key()).to_json()
    return jose.JWKEC(key=private.public_key()).to_json()


def sign(alg: str, private: Any, msg: bytes) -> bytes:
    if alg == "EdDSA":
        return private.sign(msg)
    return getattr(jose, alg).sign(private, msg)


def make_jws(
    private: Any,
    alg: str,
    *,
    payload: bytes | dict[str, Any] = b"{}",
    url: str = URL,
    nonce: str | None = "nonce-1",
    kid: str | None = None,
    jwk: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    signature: bytes | None = None,
) -> dict[str, str]:
    """A flattened JWS; with ``kid`` it names an account, else it embeds the key."""
    header: dict[str, Any] = {"alg": alg, "url": url}
    if nonce is not None:
        header["nonce"] = nonce
    if kid is not None:
        header["kid"] = kid
    else:
        header["jwk"] = dict(jwk) if jwk is not None else public_jwk(private)
    header.update(extra or {})
    data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    protected, payload_b64 = b64(json.dumps(header).encode()), b64(data)
    sig = signature or sign(alg, private, f"{protected}.{payload_b64}".encode())
    return {"protected": protected, "payload": payload_b64, "signature": b64(sig)}


def encode(jws: Mapping[str, Any]) -> bytes:
    return json.dumps(jws).encode()


class FakeServer:
    """The two callbacks verify_jws needs: stored account keys and live nonces."""

    def __init__(self) -> None:
        self.nonces = {"nonce-1", "nonce-2"}
        self.accounts: dict[str, AccountKey] = {}
        self.kid_lookups: list[str] = []

    async def key_for_kid(self, kid: str) -> AccountKey:
        self.kid_lookups.append(kid)
        if kid not in self.accounts:
            raise AcmeProblem(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no such account")
        return self.accounts[kid]

    async def consume_nonce(self, nonce: str) -> bool:
        if nonce in self.nonces:
            self.nonces.remove(nonce)
            return True
        return False

    async def verify(
        self,
        body: bytes | Mapping[str, Any],
        *,
        auth: str = "either",
        content_type: str | None = CT,
        url: str = URL,
        max_body: int = 64 * 1024,
    ) -> VerifiedRequest:
        return await verify_jws(
            body if isinstance(body, bytes) else encode(body),
            content_type=content_type,
            url=url,
            auth=auth,  # type: ignore[arg-type]
            key_for_kid=self.key_for_kid,
            consume_nonce=self.consume_nonce,
            max_body=max_body,
        )

    async def problem(self, body: bytes | Mapping[str, Any], **kwargs: Any) -> AcmeProblem:
        with pytest.raises(AcmeProblem) as info:
            await self.verify(body, **kwargs)
        return info.value


def is_problem(problem: AcmeProblem, type_: ProblemType, status: int = 400) -> bool:
    return problem.type is type_ and problem.status == status
