"""Installing the root certificate in operating-system trust stores (the guide's section 4)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

SYSTEM_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),  # Debian, Ubuntu, Alpine
    Path("/etc/pki/tls/certs/ca-bundle.crt"),  # RHEL, Fedora
    Path("/etc/ssl/cert.pem"),  # macOS, BSDs
)


@dataclass(frozen=True, slots=True)
class TrustStore:
    family: str  # "debian", "rhel" or "macos"
    description: str
    anchor: Path | None  # where the root is copied, if the store works by copying
    commands: tuple[tuple[str, ...], ...]  # what runs after the copy


def trust_store(family: str, root_cert: Path, name: str) -> TrustStore:
    """The steps that make `root_cert` trusted on an OS family, as argv lists."""
    if family == "debian":
        anchor = Path("/usr/local/share/ca-certificates") / f"{name}.crt"
        return TrustStore(family, "Debian/Ubuntu", anchor, (("update-ca-certificates",),))
    if family == "rhel":
        anchor = Path("/etc/pki/ca-trust/source/anchors") / f"{name}.crt"
        return TrustStore(family, "RHEL/Fedora", anchor, (("update-ca-trust", "extract"),))
    if family == "macos":
        command = (
            "security",
            "add-trusted-cert",
            "-d",
            "-r",
            "trustRoot",
            "-k",
            "/Library/Keychains/System.keychain",
            str(root_cert),
        )
        return TrustStore(family, "macOS", None, (command,))
    raise ValueError(f"unknown OS family {family!r} (debian, rhel or macos)")


def detect_family(os_release: Path = Path("/etc/os-release")) -> str | None:
    if platform.system() == "Darwin":
        return "macos"
    try:
        text = os_release.read_text(encoding="utf-8").lower()
    except OSError:
        return None
    ids = set()
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("id", "id_like"):
            ids.update(value.strip('"').split())
    if ids & {"debian", "ubuntu", "alpine"}:
        return "debian"
    if ids & {"rhel", "fedora", "centos", "rocky", "almalinux"}:
        return "rhel"
    return None


def system_bundle() -> Path | None:
    return next((p for p in SYSTEM_BUNDLES if p.is_file()), None)
