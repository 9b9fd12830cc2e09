"""The one JWS verification pipeline for ACME POSTs (RFC 8555 6.2-6.5, RFC 7515).

Every POST goes through :func:`verify_jws`, in Pebble's order: media type, size,
flattened JSON (no unprotected ``header``, no ``signatures``), strict base64url,
algorithm allowlist, ``jwk`` xor ``kid`` (as the route requires), nonce present,
``url`` equal to the request URL, no ``b64``/``crit``, algorithm matching the key,
signature verified with the key passed explicitly; only then is the nonce consumed.
Every failure is an :class:`AcmeProblem`. The JWS nested in a request is parsed by the
same pieces: keyChange's inner JWS (:func:`verify_key_change_inner`) and newAccount's
External Account Binding (:func:`external_binding`, whose MAC the authority checks).

Account keys (JWK to ``AccountKey``) are parsed in :mod:`acme_ca.api.jwk`. josepy stays
inside these two modules. Only its RSA algorithm objects (``jwa.RS256.verify(key,
msg, sig)``) and its RSA/EC JWK parsing are used (thumbprints, like base64url, come
from :mod:`acme_ca.encoding`, the code base's one of each), never
``Signature.verify``, which falls back to the embedded key and trusts the header.
ECDSA (the signature of nearly every request, so the hot path) and Ed25519, which
josepy lacks, are verified with ``cryptography`` directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from josepy import jwa

from acme_ca.api.jwk import CRV_BY_CURVE_NAME, PublicKey, describe, parse_jwk
from acme_ca.authority.accounts import AccountKey
from acme_ca.authority.eab import MAC_ALGORITHMS, ExternalBinding
from acme_ca.domain.problems import AcmeProblem, ProblemType, b64url_field, malformed

ALGORITHMS = ("RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA")

JOSE_CONTENT_TYPE = "application/jose+json"

_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}  # RFC 7518 3.4
_JOSE_ALGORITHMS: Mapping[str, jwa.JWASignature] = {"RS256": jwa.RS256, "PS256": jwa.PS256}
_ECDSA = {
    "ES256": ec.ECDSA(hashes.SHA256()),
    "ES384": ec.ECDSA(hashes.SHA384()),
    "ES512": ec.ECDSA(hashes.SHA512()),
}
_EC_SIGNATURE_BYTES = {"P-256": 64, "P-384": 96, "P-521": 132}  # raw r || s
_FLATTENED = frozenset({"protected", "payload", "signature"})
_NONCE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPE = b"\\u"


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """A POST whose signature, URL and nonce have been checked."""

    url: str
    payload: bytes  # b"" for POST-as-GET
    key: AccountKey
    kid: str | None
    nonce: str
    protected: Mapping[str, Any]

    @property
    def post_as_get(self) -> bool:
        """RFC 8555 6.3: the payload is the empty string."""
        return self.payload == b""

    def json(self) -> dict[str, Any]:
        """The payload as a JSON object; anything else is malformed."""
        return _json_object(self.payload, "JWS payload")


# --- the pipeline ----------------------------------------------------------------------


async def verify_jws(
    body: bytes,
    *,
    content_type: str | None,
    url: str,
    auth: Literal["jwk", "kid", "either"],
    key_for_kid: Callable[[str], Awaitable[AccountKey]],
    consume_nonce: Callable[[str], Awaitable[bool]],
    max_body: int = 64 * 1024,
) -> VerifiedRequest:
    """Check an ACME POST (RFC 8555 6.2-6.5) and return what it says and who signed it.

    ``url`` is the URL the request was sent to (``Links.request_url``); ``auth`` is
    "jwk" for newAccount and revocation by certificate key, "kid" elsewhere.
    ``key_for_kid`` raises its own problem for an unknown or unusable account.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JOSE_CONTENT_TYPE:
        raise malformed(
            f'Invalid Content-Type header on POST. Content-Type must be "{JOSE_CONTENT_TYPE}"',
            status=415,
        )
    if len(body) > max_body:
        raise malformed(f"request body larger than {max_body} bytes", status=413)
    jws = _Flattened.parse(_json_object(body, "request body"), "JWS")
    alg = _check_algorithm(jws.protected)
    header = jws.protected
    if ("jwk" in header) == ("kid" in header):
        raise malformed('the JWS protected header must contain exactly one of "jwk" and "kid"')
    if auth == "jwk" and "kid" in header:
        raise malformed('this resource requires a JWS with an embedded "jwk", not a "kid"')
    if auth == "kid" and "jwk" in header:
        raise malformed('this resource requires a JWS with a "kid" (account URL), not a "jwk"')
    nonce = header.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise AcmeProblem(ProblemType.BAD_NONCE, "JWS has no anti-replay nonce")
    _check_url(header, url, "JWS")
    if "b64" in header or "crit" in header:
        raise malformed('the JWS protected header must not contain "b64" or "crit"')
    kid: str | None = None
    if "jwk" in header:
        key = parse_jwk(header["jwk"])
    else:
        kid = header["kid"]
        if not isinstance(kid, str) or not kid:
            raise malformed('the JWS "kid" must be an account URL')
        key = await key_for_kid(kid)
    jws.verify(alg, key)
    if not _NONCE.fullmatch(nonce) or not await consume_nonce(nonce):
        raise AcmeProblem(
            ProblemType.BAD_NONCE,
            f"JWS has an invalid anti-replay nonce: {json.dumps(nonce)}",  # Boulder's text
        )
    return VerifiedRequest(url, jws.payload, key, kid, nonce, MappingProxyType(header))


def verify_key_change_inner(body: Mapping[str, Any], *, outer: VerifiedRequest) -> AccountKey:
    """RFC 8555 7.3.5: check the inner JWS of a keyChange request; return the new key.

    ``body`` is the outer payload (``outer.json()``). The inner JWS is flattened, has
    a "jwk" (the new key), no "kid" and no "nonce", the outer "url", a valid signature
    by the new key; its payload names the outer account and the current key.
    """
    inner = _Flattened.parse(body, "inner JWS")
    alg = _check_algorithm(inner.protected)
    header = inner.protected
    if "jwk" not in header or "kid" in header:
        raise malformed('the inner JWS must contain a "jwk" (the new key) and no "kid"')
    _check_nested(header, outer, "inner JWS")
    new_key = parse_jwk(header["jwk"])
    inner.verify(alg, new_key, what="inner JWS")
    payload = _json_object(inner.payload, "inner JWS payload")
    if outer.kid is None or payload.get("account") != outer.kid:
        raise malformed('the inner JWS payload "account" must equal the outer JWS "kid"')
    try:
        old_key = parse_jwk(payload.get("oldKey", {}))
    except AcmeProblem:
        raise malformed('the inner JWS payload "oldKey" is not a valid public JWK') from None
    if old_key.thumbprint != outer.key.thumbprint:
        raise malformed('the inner JWS payload "oldKey" is not the account\'s current key')
    if new_key.thumbprint == outer.key.thumbprint:
        raise malformed("the new account key is the same as the old key")
    return new_key


def external_binding(payload: Mapping[str, Any], *, outer: VerifiedRequest
                     ) -> ExternalBinding | None:
    """RFC 8555 7.3.4: check the syntax of a newAccount's "externalAccountBinding"
    (None when there is none): a flattened JWS whose protected header has a MAC
    "alg" (HS256/384/512), the key id as "kid", the outer "url" and no "nonce", and
    whose payload is the outer JWS's "jwk". ``authority/eab.check`` verifies its MAC.
    Anything else is malformed; a payload that is another key is unauthorized."""
    if "externalAccountBinding" not in payload:
        return None
    what = "externalAccountBinding"
    value = payload["externalAccountBinding"]
    if not isinstance(value, dict):
        raise malformed(f"{what} must be a flattened JWS (a JSON object)")
    eab = _Flattened.parse(value, what)
    header = eab.protected
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in MAC_ALGORITHMS:
        raise malformed(f"{what} alg {alg!r} is not a MAC algorithm; use one of "
                        f"{', '.join(MAC_ALGORITHMS)}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise malformed(f'{what} protected header has no "kid" (the key id from the CA)')
    if "jwk" in header:
        raise malformed(f'{what} protected header must not contain a "jwk"')
    _check_nested(header, outer, what)
    try:
        bound = parse_jwk(_json_object(eab.payload, f"{what} payload"))
    except AcmeProblem as problem:
        raise malformed(f"{what} payload is not a public JWK: {problem.detail}") from None
    if bound.thumbprint != outer.key.thumbprint:
        raise AcmeProblem(ProblemType.UNAUTHORIZED,
                          f"{what} payload is not the key that signed this newAccount")
    return ExternalBinding(kid=kid, alg=alg, signing_input=eab.signing_input,
                           mac=eab.signature)


# --- pieces ----------------------------------------------------------------------------


def _check_nested(header: Mapping[str, Any], outer: VerifiedRequest, what: str) -> None:
    """A JWS nested in a request's payload (keyChange 7.3.5, External Account Binding
    7.3.4): no "nonce" (the outer one counts), no "b64" or "crit", the outer "url"."""
    if "nonce" in header:
        raise malformed(f'{what} protected header must not contain a "nonce"')
    if "b64" in header or "crit" in header:
        raise malformed(f'{what} protected header must not contain "b64" or "crit"')
    _check_url(header, outer.url, what, problem=malformed)


@dataclass(frozen=True, slots=True)
class _Flattened:
    """A flattened JWS (RFC 7515 7.2.2), decoded but not yet verified."""

    signing_input: bytes
    protected: dict[str, Any]
    payload: bytes
    signature: bytes

    @classmethod
    def parse(cls, obj: Mapping[str, Any], what: str) -> _Flattened:
        if "header" in obj:
            raise malformed(f"{what} has an unprotected header; every header must be protected")
        if "signatures" in obj:
            raise malformed(f"{what} must use the flattened JSON serialization, one signature")
        if set(obj) != _FLATTENED:
            missing = sorted(_FLATTENED - set(obj))
            extra = sorted(set(obj) - _FLATTENED)
            raise malformed(
                f"{what} must have exactly protected, payload and signature members"
                f" (missing {missing}, unexpected {extra})"
            )
        for name in sorted(_FLATTENED):
            if not isinstance(obj[name], str):
                raise malformed(f"{what} member {name!r} must be a string")
        protected_b64, payload_b64 = obj["protected"], obj["payload"]
        header_json = b64url_field(protected_b64, f"{what} protected header")
        protected = _json_object(header_json, f"{what} protected header")
        payload = b64url_field(payload_b64, f"{what} payload")
        signature = b64url_field(obj["signature"], f"{what} signature")
        # Only now, with both members proven base64url (an ASCII alphabet), is the
        # signing input (RFC 7515 5.2) built: any other text was malformed above.
        return cls(
            signing_input=f"{protected_b64}.{payload_b64}".encode("ascii"),
            protected=protected,
            payload=payload,
            signature=signature,
        )

    def verify(self, alg: str, key: AccountKey, what: str = "JWS") -> None:
        """The algorithm must fit the key, and the signature verify with that key."""
        public = key.public_key
        if alg in ("RS256", "PS256"):
            fits = isinstance(public, rsa.RSAPublicKey)
        elif alg == "EdDSA":
            fits = isinstance(public, ed25519.Ed25519PublicKey)
        else:
            fits = isinstance(public, ec.EllipticCurvePublicKey) and (
                CRV_BY_CURVE_NAME.get(public.curve.name) == _EC_CURVES[alg]
            )
        if not fits:
            raise AcmeProblem(
                ProblemType.BAD_SIGNATURE_ALGORITHM,
                f"{what} algorithm {alg} does not fit the {describe(public)} key",
                extra={"algorithms": list(ALGORITHMS)},
            )
        if not _signature_valid(alg, public, self.signing_input, self.signature):
            raise malformed(f"{what} signature is invalid")


def _signature_valid(alg: str, key: PublicKey, msg: bytes, sig: bytes) -> bool:
    if isinstance(key, ed25519.Ed25519PublicKey):
        try:
            key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True
    if isinstance(key, ec.EllipticCurvePublicKey):
        # RFC 7518 3.4: raw r || s, each exactly the curve's size; OpenSSL takes DER.
        size = _EC_SIGNATURE_BYTES[_EC_CURVES[alg]]
        if len(sig) != size:
            return False
        half = size // 2
        der = encode_dss_signature(int.from_bytes(sig[:half], "big"),
                                   int.from_bytes(sig[half:], "big"))
        try:
            key.verify(der, msg, _ECDSA[alg])
        except InvalidSignature:
            return False
        return True
    try:
        return bool(_JOSE_ALGORITHMS[alg].verify(key, msg, sig))
    except ValueError:
        return False


def _check_algorithm(header: Mapping[str, Any]) -> str:
    """RFC 8555 6.2: an allowlisted asymmetric algorithm; never "none" or a MAC."""
    alg = header.get("alg")
    if isinstance(alg, str) and alg in ALGORITHMS:
        return alg
    raise AcmeProblem(
        ProblemType.BAD_SIGNATURE_ALGORITHM,
        f"JWS algorithm {alg!r} is not supported; use one of {', '.join(ALGORITHMS)}",
        extra={"algorithms": list(ALGORITHMS)},
    )


def _check_url(
    header: Mapping[str, Any],
    url: str,
    what: str,
    problem: Callable[[str], AcmeProblem] | None = None,
) -> None:
    """RFC 8555 6.4: the signed "url" is the URL the request was sent to."""
    signed = header.get("url")
    if not isinstance(signed, str) or not signed:
        raise malformed(f'{what} protected header has no "url"')
    if signed != url:
        make = problem or (lambda d: AcmeProblem(ProblemType.UNAUTHORIZED, d))
        raise make(f'{what} "url" {signed!r} does not match the request URL {url!r}')


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise ValueError(f"duplicate member {name!r}")
        obj[name] = value
    return obj


def _lone_surrogate(value: Any) -> bool:
    """Does a string anywhere in ``value`` (member names too) hold a lone surrogate?
    json.loads joins an escaped pair into one character, so any left is lone. A loop,
    not recursion: the value may be nested as deep as json.loads allows."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    """Strict JSON: UTF-8, no duplicate members (RFC 7515 5.2), no NaN, an object, and
    Unicode text only: a lone surrogate, which JSON can carry only as a "\\ud800" escape,
    is no character (RFC 8259 8.2) and breaks whatever encodes the string later."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_unique_members,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise malformed(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise malformed(f"{what} must be a JSON object")
    # Only an escape can make a surrogate (strict UTF-8 decoding refuses encoded ones).
    if _ESCAPE in data and _lone_surrogate(value):
        raise malformed(f"{what} holds a lone surrogate (\\uD800-\\uDFFF): not Unicode text")
    return value
