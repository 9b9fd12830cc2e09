"""Keys on a PKCS#11 token (an HSM, or SoftHSM2 in the tests), through python-pkcs11
(the ``hsm`` extra). The key is never exported: the token signs the bytes
``pki/signer.py`` hands it, and ``TokenSigner`` is a ``Signer`` like a key file.

ISSUE 14 SKELETON: fix/token writes this module. The contract:

- ``open_token_signer(uri, module, certificate)``: load the module, find the token,
  log in with the URI's PIN, find the private key among the objects the URI matches
  whose public key is the certificate's (several keys may share a label: a renewed
  intermediate's new key is made with the same label). PkiError with one line each for:
  python-pkcs11 not installed, module missing or not a PKCS#11 library, token missing,
  wrong PIN (never retried: a token locks after a few), no such object, no object
  matching the certificate.
- ``TokenSigner.sign(data)`` is thread-safe (one lock per module: PKCS#11 sessions are
  not), hashes in Python and signs with CKM_ECDSA / CKM_SHA*_RSA_PKCS, returns the
  DER ECDSA-Sig-Value or the PKCS#1 v1.5 signature. A failure raises PkiError and marks
  the module for a reconnect: the next sign (at most one attempt per second)
  re-initializes the library, logs in and finds the key again, so the server recovers
  when the token is back. In a forked worker the library is re-initialized first.
- ``generate_token_key(uri, module, key_type)``: a new key pair on the token, labelled
  with the URI's object, a fresh random CKA_ID, private key sensitive, not extractable,
  sign only; returns (public key, the URI pinned to that id).
- ``destroy_token_key(uri, module)``: removes the pinned key pair (an archived
  intermediate's key past its destroy-after).
"""

from __future__ import annotations

from pathlib import Path

from acme_ca.pki.keys import KeyType, PublicKey
from acme_ca.pki.pkcs11_uri import Pkcs11Uri


def open_token_signer(uri: Pkcs11Uri, module: Path | None, certificate: object) -> object:
    raise NotImplementedError("issue 14: fix/token")


def generate_token_key(uri: Pkcs11Uri, module: Path | None,
                       key_type: KeyType) -> tuple[PublicKey, Pkcs11Uri]:
    raise NotImplementedError("issue 14: fix/token")


def destroy_token_key(uri: Pkcs11Uri, module: Path | None) -> None:
    raise NotImplementedError("issue 14: fix/token")
