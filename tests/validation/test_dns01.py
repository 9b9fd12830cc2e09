"""dns-01 validation (RFC 8555 8.4) against the fake DNS server of conftest.py.

Every test talks real UDP (and TCP) to servers on 127.0.0.1; the validator's
DnsClient is pointed at them through resolvers / zone_resolvers as in the config.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import dns.rcode
import dns.resolver
import pytest

from acme_ca.config import ValidationConfig
from acme_ca.domain.models import Identifier
from acme_ca.domain.problems import ProblemType
from acme_ca.validation import key_authorization
from acme_ca.validation.dns import DnsClient
from acme_ca.validation.dns01 import Dns01Validator, txt_digest
from tests.validation.conftest import StartDns

NAME = "web.bluerobin.local"
IDENT = Identifier("dns", NAME)
CHALLENGE = f"_acme-challenge.{NAME}"
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
THUMBPRINT = "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
KEY_AUTH = key_authorization(TOKEN, THUMBPRINT)
# Computed here independently of txt_digest: standard base64, then the url alphabet.
DIGEST = (
    base64.b64encode(hashlib.sha256(KEY_AUTH.encode()).digest())
    .decode()
    .rstrip("=")
    .replace("+", "-")
    .replace("/", "_")
)
OTHER = "x" * 43


def validator(
    *resolvers: str, zones: Mapping[str, Sequence[str]] | None = None, timeout: float = 2
) -> Dns01Validator:
    return Dns01Validator(DnsClient(resolvers, zones, timeout))


def test_digest_is_unpadded_base64url_sha256():
    """RFC 8555 8.4: base64url(SHA-256(keyAuthorization)), 43 characters, no '='."""
    assert txt_digest(KEY_AUTH) == DIGEST
    assert len(DIGEST) == 43


async def test_valid_record(fake_dns: StartDns):
    """RFC 8555 8.4: one TXT record equal to the digest validates; the record says how."""
    server, address = await fake_dns(records={CHALLENGE: [f'TXT "{DIGEST}"']})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem
    (record,) = result.records
    assert record["name"] == CHALLENGE
    assert record["resolver"] == address
    assert record["cname_chain"] == []
    assert record["values"] == [f'"{DIGEST}"']
    (question,) = server.log
    assert (question.name, question.rdtype, question.transport) == (CHALLENGE, "TXT", "udp")
    assert question.payload == 1232  # EDNS0, DNS flag day 2020 size


async def test_wrong_value_is_unauthorized(fake_dns: StartDns):
    """RFC 8555 8.4: a TXT record that is not the digest: unauthorized, the expected
    digest named, the value found not (RFC 8555 10.2; test_no_probe.py)."""
    _, address = await fake_dns(records={CHALLENGE: [f'TXT "{OTHER}"']})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail.startswith(
        f"found 1 TXT record at {CHALLENGE} (from {address}), "
        f"none equals the expected digest {DIGEST}"
    )
    assert OTHER not in result.problem.detail


async def test_one_correct_record_among_several(fake_dns: StartDns):
    """RFC 8555 8.4: several TXT records (e.g. two orders in flight); one match suffices."""
    records = {CHALLENGE: [f'TXT "{OTHER}"', f'TXT "{DIGEST}"', 'TXT "v=spf1 -all"']}
    _, address = await fake_dns(records=records)
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem


async def test_several_records_none_correct(fake_dns: StartDns):
    _, address = await fake_dns(records={CHALLENGE: [f'TXT "{OTHER}"', 'TXT "y"']})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED
    assert result.problem.detail.startswith(f"found 2 TXT records at {CHALLENGE}")


async def test_record_split_into_strings_is_concatenated(fake_dns: StartDns):
    """RFC 1035 3.3.14 / RFC 7208 3.3: the strings of one record are joined."""
    first, rest = DIGEST[:20], DIGEST[20:]
    _, address = await fake_dns(records={CHALLENGE: [f'TXT "{first}" "{rest}"']})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem


async def test_halves_in_separate_records_do_not_count(fake_dns: StartDns):
    """Two records are two values: they are never joined to each other."""
    first, rest = DIGEST[:20], DIGEST[20:]
    _, address = await fake_dns(records={CHALLENGE: [f'TXT "{first}"', f'TXT "{rest}"']})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is ProblemType.UNAUTHORIZED


async def test_cname_to_a_delegated_zone(fake_dns: StartDns):
    """ACME-NOTES #12 (acme-dns): the CNAME target lives in a zone another server serves.

    Each name of the chain is asked of the servers configured for it.
    """
    target = "f3a1.auth.acme-dns.internal"
    home, home_address = await fake_dns(records={CHALLENGE: [f"CNAME {target}."]})
    delegated, delegated_address = await fake_dns(records={target: [f'TXT "{DIGEST}"']})
    zones = {"bluerobin.local": (home_address,), "acme-dns.internal": (delegated_address,)}
    result = await validator(zones=zones).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem
    (record,) = result.records
    assert record["cname_chain"] == [target]
    assert record["resolvers"] == [home_address, delegated_address]
    assert home.queries == [(CHALLENGE, "TXT")]
    assert delegated.queries == [(target, "TXT")]


async def test_cname_chain_answered_at_once(fake_dns: StartDns):
    """A recursive resolver returns the whole chain in one answer: no second query."""
    records = {
        CHALLENGE: ["CNAME hop.bluerobin.local."],
        "hop.bluerobin.local": ["CNAME final.bluerobin.local."],
        "final.bluerobin.local": [f'TXT "{DIGEST}"'],
    }
    server, address = await fake_dns(records=records, chase=True)
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem
    assert result.records[0]["cname_chain"] == ["hop.bluerobin.local", "final.bluerobin.local"]
    assert server.queries == [(CHALLENGE, "TXT")]


@pytest.mark.parametrize("chase", [False, True])
async def test_cname_loop_fails(fake_dns: StartDns, chase: bool):
    """A CNAME loop is a dns problem, whether the server follows it or we do."""
    records = {
        CHALLENGE: ["CNAME a.bluerobin.local."],
        "a.bluerobin.local": ["CNAME b.bluerobin.local."],
        "b.bluerobin.local": [f"CNAME {CHALLENGE}."],
    }
    server, address = await fake_dns(records=records, chase=chase)
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is ProblemType.DNS
    assert "loops" in result.problem.detail
    assert CHALLENGE in result.problem.detail
    assert len(server.queries) <= 3


async def test_cname_chain_longer_than_eight_hops_fails(fake_dns: StartDns):
    """At most 8 CNAMEs are followed (the brief; Boulder's limit is in the same range)."""
    names = [CHALLENGE] + [f"h{i}.bluerobin.local" for i in range(1, 11)]
    records = {a: [f"CNAME {b}."] for a, b in itertools.pairwise(names)}
    records[names[-1]] = [f'TXT "{DIGEST}"']
    server, address = await fake_dns(records=records)
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is ProblemType.DNS
    assert "longer than 8 CNAMEs" in result.problem.detail
    assert len(server.queries) == 9


async def test_nxdomain(fake_dns: StartDns):
    """RFC 8555 6.7 dns: the challenge name does not exist; name and server named."""
    _, address = await fake_dns(records={NAME: ["A 10.0.0.5"]})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is ProblemType.DNS
    assert result.problem.detail == f"{CHALLENGE} does not exist (NXDOMAIN) at {address}"
    assert result.records[0]["rcode"] == "NXDOMAIN"


async def test_nxdomain_at_the_cname_target(fake_dns: StartDns):
    _, address = await fake_dns(records={CHALLENGE: ["CNAME gone.bluerobin.local."]})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.detail == (
        f"{CHALLENGE} (after 1 CNAME) does not exist (NXDOMAIN) at {address}"
    )


async def test_no_txt_record(fake_dns: StartDns):
    """The name exists (it has an A record) but no TXT: a dns problem."""
    _, address = await fake_dns(records={CHALLENGE: ["A 10.0.0.5"]})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is ProblemType.DNS
    assert result.problem.detail == f"no TXT record found at {CHALLENGE} (asked {address})"


async def test_servfail(fake_dns: StartDns):
    _, address = await fake_dns(rcodes={CHALLENGE: dns.rcode.SERVFAIL})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is ProblemType.DNS
    assert f"{address} answered SERVFAIL" in result.problem.detail
    assert CHALLENGE in result.problem.detail


async def test_next_resolver_after_servfail(fake_dns: StartDns):
    """A resolver that answers SERVFAIL is dropped; the next one configured is asked."""
    _, broken = await fake_dns(rcodes={CHALLENGE: dns.rcode.SERVFAIL})
    _, working = await fake_dns(records={CHALLENGE: [f'TXT "{DIGEST}"']})
    result = await validator(broken, working).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem
    assert result.records[0]["resolver"] == working


async def test_silent_server_times_out(fake_dns: StartDns):
    """A resolver that never answers: a dns problem within the configured timeout."""
    server, address = await fake_dns(silent=True)
    started = time.monotonic()
    result = await validator(address, timeout=0.3).validate(IDENT, TOKEN, KEY_AUTH)
    assert time.monotonic() - started < 1.0
    assert result.problem is not None
    assert result.problem.type is ProblemType.DNS
    assert result.problem.detail == (
        f"timed out after 0.3s looking up TXT for {CHALLENGE} at {address}"
    )
    assert len(server.queries) >= 2  # retransmitted within the deadline


async def test_truncated_udp_answer_is_retried_over_tcp(fake_dns: StartDns):
    """ACME-NOTES (pebble b29f2f5): 30 large TXT records exceed 1232 bytes, so the UDP
    answer comes back with TC set (RFC 1035 4.2.1) and the question is asked over TCP.
    """
    filler = [f'TXT "{i:02d}{"z" * 100}"' for i in range(29)]
    server, address = await fake_dns(records={CHALLENGE: [*filler, f'TXT "{DIGEST}"']})
    result = await validator(address).validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem
    assert [q.transport for q in server.log] == ["udp", "tcp"]
    assert len(result.records[0]["values"]) == 30


async def test_zone_resolvers_longest_suffix_wins(fake_dns: StartDns):
    """[validation] zone_resolvers: the longest matching suffix chooses the servers."""
    wrong = {CHALLENGE: [f'TXT "{OTHER}"']}
    broad, broad_address = await fake_dns(records=wrong)
    narrow, narrow_address = await fake_dns(records={CHALLENGE: [f'TXT "{DIGEST}"']})
    default, default_address = await fake_dns(records=wrong)
    zones = {"bluerobin.local": (broad_address,), "web.bluerobin.local": (narrow_address,)}
    check = validator(default_address, zones=zones)
    result = await check.validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem
    assert narrow.queries == [(CHALLENGE, "TXT")]
    assert broad.queries == default.queries == []
    # A sibling name falls back to the broader zone; a name outside both to the default.
    await check.validate(Identifier("dns", "db.bluerobin.local"), TOKEN, KEY_AUTH)
    assert broad.queries == [("_acme-challenge.db.bluerobin.local", "TXT")]
    await check.validate(Identifier("dns", "web.example.internal"), TOKEN, KEY_AUTH)
    assert default.queries == [("_acme-challenge.web.example.internal", "TXT")]


async def test_zone_suffix_matches_whole_labels_only(fake_dns: StartDns):
    """'robin.local' is no zone of 'web.bluerobin.local'."""
    zone, zone_address = await fake_dns()
    _, default_address = await fake_dns(records={CHALLENGE: [f'TXT "{DIGEST}"']})
    check = validator(default_address, zones={"robin.local": (zone_address,)})
    assert (await check.validate(IDENT, TOKEN, KEY_AUTH)).valid
    assert zone.queries == []


async def test_system_resolvers_when_none_configured(
    fake_dns: StartDns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """No resolvers configured: the servers of resolv.conf (read by dnspython) are asked."""
    _, address = await fake_dns(records={CHALLENGE: [f'TXT "{DIGEST}"']})
    host, port = address.split(":")
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {host}\n")
    real = dns.resolver.Resolver

    def from_file(configure: bool = True) -> dns.resolver.Resolver:
        system = real(filename=str(conf), configure=configure)
        system.port = int(port)  # resolv.conf has no ports; the fake server is not on 53
        return system

    monkeypatch.setattr(dns.resolver, "Resolver", from_file)
    result = await validator().validate(IDENT, TOKEN, KEY_AUTH)
    assert result.valid, result.problem
    assert result.records[0]["resolver"] == address


async def test_wildcard_prefix_is_dropped(fake_dns: StartDns):
    """RFC 8555 7.1.3: a wildcard's authorization is for the base name."""
    server, address = await fake_dns(records={CHALLENGE: [f'TXT "{DIGEST}"']})
    result = await validator(address).validate(Identifier("dns", f"*.{NAME}"), TOKEN, KEY_AUTH)
    assert result.valid, result.problem
    assert server.queries == [(CHALLENGE, "TXT")]


@pytest.mark.parametrize(
    ("identifier", "problem"),
    [
        (Identifier("ip", "10.0.0.5"), ProblemType.MALFORMED),
        (Identifier("ip", "2001:db8::5"), ProblemType.MALFORMED),
        (Identifier("dns", "10.0.0.5"), ProblemType.MALFORMED),
        (Identifier("dns", "bad..name"), ProblemType.MALFORMED),
        (Identifier("email", "a@bluerobin.local"), ProblemType.UNSUPPORTED_IDENTIFIER),
    ],
)
async def test_what_dns01_cannot_validate(
    fake_dns: StartDns, identifier: Identifier, problem: ProblemType
):
    """RFC 8738 7: dns-01 is for names only; nothing is looked up."""
    server, address = await fake_dns()
    result = await validator(address).validate(identifier, TOKEN, KEY_AUTH)
    assert result.problem is not None
    assert result.problem.type is problem
    assert server.queries == []


async def test_unreachable_resolver_then_next(fake_dns: StartDns):
    """A resolver port nobody listens on is reported, and the next resolver is asked
    once the first one's share of the timeout (a third) has passed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    alone = await validator(closed, timeout=0.3).validate(IDENT, TOKEN, KEY_AUTH)
    assert alone.problem is not None
    assert alone.problem.type is ProblemType.DNS
    assert closed in alone.problem.detail
    _, working = await fake_dns(records={CHALLENGE: [f'TXT "{DIGEST}"']})
    both = validator(closed, working, timeout=0.6)
    assert (await both.validate(IDENT, TOKEN, KEY_AUTH)).valid


def test_client_from_config():
    """[validation] resolvers, zone_resolvers and timeout become the client's settings."""
    config = ValidationConfig(
        resolvers=("10.0.0.53",),
        zone_resolvers={"bluerobin.local": ("10.1.0.53:5353", "[fd00::53]:53")},
        timeout=timedelta(seconds=3),
    )
    client = DnsClient.from_config(config)
    assert client.servers_for(NAME) == (("10.1.0.53", 5353), ("fd00::53", 53))
    assert client.servers_for("Bluerobin.Local.") == (("10.1.0.53", 5353), ("fd00::53", 53))
    assert client.servers_for("example.internal") == (("10.0.0.53", 53),)
