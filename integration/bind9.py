"""A real BIND 9 `named`, authoritative for bluerobin.local, for the dns-01 tests.

`serving_bind9(workdir)` writes a named.conf and a zone file under `workdir`, starts
`named -g` (foreground, logging to a file) on a free 127.0.0.1 port for UDP and TCP,
waits until it answers the zone's SOA over both, and stops it by pid afterwards.

The zone accepts RFC 2136 dynamic updates signed with a TSIG key (hmac-sha256), and
only for TXT records at _acme-challenge.<name> of the names in the zone: what an ACME
client's rfc2136 plugin needs and nothing more. The rndc control channel is off (it
would take the fixed port 953); recursion is off (authoritative only).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from integration.conftest import require_program, stop_process

ZONE = "bluerobin.local"
KEY_NAME = "acme-update"
ALGORITHM = "hmac-sha256"
RECORDS: Mapping[str, str] = {  # relative name -> IPv4 address (A records)
    "ns1": "127.0.0.1",
    "web": "127.0.0.1",
    "api": "127.0.0.1",
    "db": "127.0.0.1",
}
READY_DEADLINE = 15.0  # seconds for named to load the zone and answer
QUERY_TIMEOUT = 1.0


class Bind9(NamedTuple):
    port: int
    key_name: str
    secret: str  # base64, as in named.conf and the clients' credentials
    workdir: Path
    process: subprocess.Popen[bytes]
    zone: str = ZONE

    @property
    def address(self) -> str:
        """The address as [validation] resolvers and lego take it: "127.0.0.1:<port>"."""
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.workdir / "named.log").read_text(errors="replace")

    def query(self, name: str, rdtype: str = "TXT", *, tcp: bool = False) -> dns.message.Message:
        """One query to this named (UDP, or TCP), its answer."""
        request = dns.message.make_query(name, rdtype)
        send = dns.query.tcp if tcp else dns.query.udp
        return send(request, "127.0.0.1", port=self.port, timeout=QUERY_TIMEOUT)

    def txt(self, name: str) -> list[str]:
        """The TXT values at `name` (each record's strings joined)."""
        answer = self.query(name, "TXT")
        return [
            b"".join(rdata.strings).decode()
            for rrset in answer.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        ]

    def update(self, name: str, value: str, *, signed: bool = True) -> int:
        """Add a TXT record at `name` by RFC 2136 (TSIG-signed or not): the rcode."""
        keyring = dns.tsigkeyring.from_text({self.key_name: self.secret}) if signed else None
        message = dns.update.UpdateMessage(
            self.zone, keyring=keyring, keyalgorithm=ALGORITHM if signed else None
        )
        message.add(name + ".", 60, "TXT", f'"{value}"')
        response = dns.query.tcp(message, "127.0.0.1", port=self.port, timeout=QUERY_TIMEOUT)
        return response.rcode()


def free_udp_tcp_port() -> int:
    """A 127.0.0.1 port free for both TCP and UDP a moment ago."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    pytest.fail("no 127.0.0.1 port free for both TCP and UDP")


def zone_text(records: Mapping[str, str]) -> str:
    lines = [
        "$TTL 60",
        f"@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. ( 1 60 60 3600 60 )",
        f"@ IN NS ns1.{ZONE}.",
    ]
    lines += [f"{name} IN A {address}" for name, address in records.items()]
    return "\n".join(lines) + "\n"


def named_conf(workdir: Path, port: int, secret: str, records: Mapping[str, str]) -> str:
    names = [ZONE, *(f"{name}.{ZONE}" for name in records)]
    grants = "".join(
        f"        grant {KEY_NAME} name _acme-challenge.{name}. TXT;\n" for name in names
    )
    return (
        "options {\n"
        f'    directory "{workdir}";\n'
        f'    pid-file "{workdir}/named.pid";\n'
        f'    session-keyfile "{workdir}/session.key";\n'
        f'    managed-keys-directory "{workdir}";\n'
        f"    listen-on port {port} {{ 127.0.0.1; }};\n"
        "    listen-on-v6 { none; };\n"
        "    recursion no;\n"
        "    allow-query { 127.0.0.1; };\n"
        "    dnssec-validation no;\n"
        "    notify no;\n"
        "};\n"
        "controls { };\n"
        f'key "{KEY_NAME}" {{ algorithm {ALGORITHM}; secret "{secret}"; }};\n'
        f'zone "{ZONE}" {{\n'
        "    type primary;\n"
        f'    file "{workdir}/{ZONE}.zone";\n'
        "    update-policy {\n"
        f"{grants}"
        "    };\n"
        "};\n"
    )


def _answers(port: int) -> str | None:
    """None when named answers the zone's SOA authoritatively over UDP and TCP, else why not."""
    request = dns.message.make_query(ZONE, "SOA")
    for send in (dns.query.udp, dns.query.tcp):
        try:
            response = send(request, "127.0.0.1", port=port, timeout=QUERY_TIMEOUT)
        except (OSError, dns.exception.DNSException) as exc:
            return f"{send.__name__}: {exc!r}"
        if response.rcode() != dns.rcode.NOERROR or not response.answer:
            return f"{send.__name__}: {dns.rcode.to_text(response.rcode())}, no SOA"
    return None


@contextlib.contextmanager
def serving_bind9(workdir: Path, records: Mapping[str, str] = RECORDS) -> Iterator[Bind9]:
    """named authoritative for bluerobin.local on a free port, ready; stopped afterwards."""
    # /usr/sbin is not on every user's PATH; as root (CI) named stays root: no -u needed
    named = require_program("named" if shutil.which("named") else "/usr/sbin/named")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_udp_tcp_port()
    secret = base64.b64encode(os.urandom(32)).decode("ascii")
    conf = workdir / "named.conf"
    conf.write_text(named_conf(workdir, port, secret, records), encoding="utf-8")
    (workdir / f"{ZONE}.zone").write_text(zone_text(records), encoding="utf-8")
    checkconf = Path(named).with_name("named-checkconf")
    if checkconf.exists():
        check = subprocess.run(
            [str(checkconf), str(conf)], capture_output=True, text=True, timeout=30, check=False
        )
        assert check.returncode == 0, (check.stdout, check.stderr, conf.read_text())
    argv = [named, "-g", "-4", "-n", "1", "-c", str(conf)]
    with (workdir / "named.log").open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    bind = Bind9(port, KEY_NAME, secret, workdir, process)
    try:
        deadline = time.monotonic() + READY_DEADLINE
        why: str | None = "no attempt"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"named exited {process.returncode} before answering:\n{bind.log()}")
            why = _answers(port)
            if why is None:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"named did not answer within {READY_DEADLINE} s: {why}\n{bind.log()}")
        yield bind
    finally:
        stop_process(process)
