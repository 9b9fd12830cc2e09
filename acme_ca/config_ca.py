"""The configuration of the CA's own files: the ``[ca]`` table.

    [ca]
    root_cert = "/var/lib/acme-ca/ca/root-ca.crt"
    intermediate_cert = "/var/lib/acme-ca/ca/intermediate-ca.crt"
    intermediate_key = "/var/lib/acme-ca/ca/intermediate-ca.key"  # or a PKCS#11 URI:
    #   "pkcs11:token=acme-ca;object=intermediate?pin-source=file:/run/secrets/pin"
    pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"  # the token's library
    intermediate_key_passphrase_file = "/run/secrets/intermediate"  # an encrypted key file
    chain = "/var/lib/acme-ca/ca/ca-chain.pem"
    alternate_chains = []

The certificates, key and chain default to where `acme-ca init` puts them under
[server] data_dir (``default_ca_paths``); a relative path is the configuration file's.
``config.py`` reads the table through ``SCHEMA`` and ``read_ca``; a wrong value raises
``ConfigError`` naming the key. The root key is not here: it belongs offline
(``config.offline_dir``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acme_ca import config_values as values
from acme_ca.pkcs11_uri import Pkcs11Uri

SCHEMA: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
    "root_cert": ("a file path", values.path),
    "intermediate_cert": ("a file path", values.path),
    "intermediate_key": ("a file path or a PKCS#11 URI ('pkcs11:token=...;object=...')",
                         values.key_location),
    "pkcs11_module": ("the path of a PKCS#11 library", values.path),
    "intermediate_key_passphrase_file": ("a file path", values.path),
    "chain": ("a file path", values.path),
    "alternate_chains": ("a list of file paths", values.paths),
}


@dataclass(frozen=True, slots=True)
class CaConfig:
    root_cert: Path
    intermediate_cert: Path
    # a key file, or a key on a PKCS#11 token (an RFC 7512 URI: pkcs11_uri.py)
    intermediate_key: Path | Pkcs11Uri
    chain: Path
    intermediate_key_passphrase_file: Path | None = None
    alternate_chains: tuple[Path, ...] = ()
    # the PKCS#11 library (the vendor's module, or SoftHSM2's) for a key on a token
    pkcs11_module: Path | None = None


def default_ca_paths(data_dir: Path) -> dict[str, Path]:
    """Where `acme-ca init` puts the online CA files under a data directory."""
    ca = data_dir / "ca"
    return {
        "root_cert": ca / "root-ca.crt",
        "intermediate_cert": ca / "intermediate-ca.crt",
        "intermediate_key": ca / "intermediate-ca.key",
        "chain": ca / "ca-chain.pem",
    }


def read_ca(get: Callable[[str, Any], Any], data_dir: Path) -> CaConfig:
    """The ``[ca]`` settings: ``get(dotted key, default)`` reads one value; the paths not
    given are ``default_ca_paths(data_dir)``."""
    return CaConfig(
        **{key: get(f"ca.{key}", default) for key, default in default_ca_paths(data_dir).items()},
        intermediate_key_passphrase_file=get("ca.intermediate_key_passphrase_file", None),
        alternate_chains=get("ca.alternate_chains", ()),
        pkcs11_module=get("ca.pkcs11_module", None),
    )
