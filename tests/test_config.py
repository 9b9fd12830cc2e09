"""Configuration: defaults, path resolution, overrides, and one clear error per bad value."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from acme_ca import config_values
from acme_ca.config import (
    format_duration,
    load_config,
    parse_duration,
    parse_host_port,
)
from acme_ca.errors import ConfigError


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    data = tmp_path / "acme-ca-data"
    assert config.source is None
    assert config.server.listen == "127.0.0.1:8555"
    assert (config.server.listen_host, config.server.listen_port) == ("127.0.0.1", 8555)
    assert config.server.base_url == "https://127.0.0.1:8555"  # own_names: not "localhost"
    assert config.server.data_dir == data
    assert config.storage.url == f"sqlite:///{data / 'acme-ca.db'}"
    assert config.storage.pool_size == 10
    assert config.ca.root_cert == data / "ca" / "root-ca.crt"
    assert config.ca.intermediate_key == data / "ca" / "intermediate-ca.key"
    assert config.ca.chain == data / "ca" / "ca-chain.pem"
    assert config.ca.intermediate_key_passphrase_file is None
    assert config.policy.allowed_domains == ("bluerobin.local",)
    assert config.policy.default_validity == timedelta(days=7)
    assert config.policy.max_validity == timedelta(days=90)
    assert config.policy.backdate == timedelta(minutes=1)
    assert (config.validation.http01_port, config.validation.tlsalpn01_port) == (80, 443)
    assert config.validation.resolvers == ()
    assert dict(config.validation.hosts) == {}


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path / "etc" / "acme-ca.toml", "")
    config = load_config(path)
    assert config.source == path
    assert config.server.data_dir == tmp_path / "etc" / "acme-ca-data"
    assert config.policy.allowed_domains == ("bluerobin.local",)


def test_every_key_is_read(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "acme-ca.toml",
        """
[server]
listen = "[::1]:9443"
hostname = "CA.BlueRobin.Local."
external_url = "https://ca.bluerobin.local/acme/"
[policy]
allowed_domains = ["BlueRobin.local", ".data-layer"]
default_validity = "1h30m"
max_validity = "30d"
backdate = "90s"
[validation]
http01_port = 8080
tlsalpn01_port = 8443
resolvers = ["10.0.0.53:53", "[fd00::53]:53"]
hosts = { "Postgres.BlueRobin.Local" = "10.0.0.5" }
""",
    )
    config = load_config(path)
    assert (config.server.listen_host, config.server.listen_port) == ("::1", 9443)
    assert config.server.hostname == "ca.bluerobin.local"
    assert config.server.base_url == "https://ca.bluerobin.local/acme"
    assert config.policy.allowed_domains == ("bluerobin.local", "data-layer")
    assert config.policy.default_validity == timedelta(seconds=5400)
    assert config.policy.max_validity == timedelta(days=30)
    assert config.policy.backdate == timedelta(seconds=90)
    assert (config.validation.http01_port, config.validation.tlsalpn01_port) == (8080, 8443)
    assert config.validation.resolvers == ("10.0.0.53:53", "[fd00::53]:53")
    assert dict(config.validation.hosts) == {"postgres.bluerobin.local": "10.0.0.5"}


@pytest.mark.parametrize(
    ("hostname", "listen", "dns", "ips", "base"),
    [
        ("localhost", "127.0.0.1:8555", (), ("127.0.0.1",), "https://127.0.0.1:8555"),
        ("localhost", "0.0.0.0:8555", (), ("127.0.0.1",), "https://127.0.0.1:8555"),
        ("localhost", "[::]:8555", (), ("::1",), "https://[::1]:8555"),
        ("ca", "10.0.0.5:443", (), ("10.0.0.5",), "https://10.0.0.5:443"),
        ("ca.bluerobin.local", "0.0.0.0:443", ("ca.bluerobin.local",), (),
         "https://ca.bluerobin.local:443"),
        ("ca.bluerobin.local", "127.0.0.1:8555", ("ca.bluerobin.local",), ("127.0.0.1",),
         "https://ca.bluerobin.local:8555"),
        ("10.0.0.5", "0.0.0.0:443", (), ("10.0.0.5",), "https://10.0.0.5:443"),
        ("fd00::5", "[::]:443", (), ("fd00::5",), "https://[fd00::5]:443"),
    ],
)
def test_the_servers_own_names_leave_out_a_single_label(
    hostname: str, listen: str, dns: tuple[str, ...], ips: tuple[str, ...], base: str
) -> None:
    """RFC 5280 4.2.1.6: the server's certificate (and the intermediate's constraints)
    carry only names pkilint accepts: a single-label hostname gives way to the listen
    address, or to loopback when the server listens on every address."""
    server = load_config(None, {"server.hostname": hostname, "server.listen": listen}).server
    assert server.own_names == (dns, tuple(ipaddress.ip_address(a) for a in ips))
    assert server.base_url == base


def test_relative_paths_are_taken_from_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(write_config(tmp_path / "cwd" / "x", "").parent)
    etc = tmp_path / "etc"
    path = write_config(
        etc / "acme-ca.toml",
        f"""
[server]
data_dir = "data"
[storage]
url = "sqlite:///db/ca.db"
[ca]
root_cert = "certs/root.crt"
intermediate_key_passphrase_file = "secret/pass"
chain = "{tmp_path / "abs" / "chain.pem"}"
""",
    )
    config = load_config(path)
    assert config.server.data_dir == etc / "data"
    assert config.storage.url == f"sqlite:///{etc / 'db' / 'ca.db'}"
    assert config.ca.root_cert == etc / "certs" / "root.crt"
    assert config.ca.intermediate_key_passphrase_file == etc / "secret" / "pass"
    assert config.ca.chain == tmp_path / "abs" / "chain.pem"  # absolute: kept
    # Unset CA files follow the (resolved) data directory.
    assert config.ca.intermediate_cert == etc / "data" / "ca" / "intermediate-ca.crt"


def test_overrides_replace_file_values_and_none_means_unset(tmp_path: Path) -> None:
    path = write_config(tmp_path / "acme-ca.toml", '[server]\nlisten = "127.0.0.1:1"\n')
    config = load_config(
        path, {"server.listen": "0.0.0.0:9000", "server.hostname": None, "policy.backdate": "5m"}
    )
    assert config.server.listen == "0.0.0.0:9000"
    assert config.server.hostname == "localhost"
    assert config.policy.backdate == timedelta(minutes=5)


def test_overrides_are_checked_like_file_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^server\.listen: "):
        load_config(None, {"server.listen": "nowhere"})


def test_a_relative_path_override_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = write_config(tmp_path / "work" / "x", "").parent
    monkeypatch.chdir(work)
    path = write_config(tmp_path / "etc" / "acme-ca.toml", "")
    config = load_config(path, {"server.data_dir": "data"})
    assert config.server.data_dir == work / "data"


def test_a_non_table_section_with_an_override_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path / "acme-ca.toml", 'server = "oops"\n')
    with pytest.raises(ConfigError, match="server"):
        load_config(path, {"server.data_dir": "data"})


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_malformed_toml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = write_config(tmp_path / "acme-ca.toml", "[server]\nlisten = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and "not valid TOML" in message and "line 2" in message
    assert "\n" not in message


BAD_VALUES = [
    # (TOML text, the start of the message: the dotted key first)
    ("[serve]\n", "unknown section [serve]"),
    ("server = 1\n", "server must be a table"),
    ("[server]\nport = 1\n", "unknown key server.port"),
    ('[policy]\ndefault_validity = "7x"\n', "policy.default_validity: "),
    ('[policy]\ndefault_validity = "0d"\n', "policy.default_validity: "),
    ('[policy]\nmax_validity = ""\n', "policy.max_validity: "),
    ("[policy]\nmax_validity = 90\n", "policy.max_validity: "),
    ('[policy]\nbackdate = "1h 30m"\n', "policy.backdate: "),
    ('[policy]\ndefault_validity = "91d"\n', "policy.default_validity (91d) exceeds"),
    ("[policy]\nallowed_domains = []\n", "policy.allowed_domains: "),
    ('[policy]\nallowed_domains = ["*.bluerobin.local"]\n', "policy.allowed_domains: "),
    ("[validation]\nhttp01_port = 0\n", "validation.http01_port: "),
    ("[validation]\nhttp01_port = 70000\n", "validation.http01_port: "),
    ('[validation]\nhttp01_port = "80"\n', "validation.http01_port: "),
    ("[validation]\ntlsalpn01_port = true\n", "validation.tlsalpn01_port: "),
    ('[server]\nlisten = "127.0.0.1"\n', "server.listen: "),
    ('[server]\nlisten = "127.0.0.1:0"\n', "server.listen: "),
    ('[server]\nlisten = "127.0.0.1:https"\n', "server.listen: "),
    ('[server]\nlisten = ""\n', "server.listen: "),
    ('[server]\nhostname = "bad host"\n', "server.hostname: "),
    ('[validation]\nresolvers = ["10.0.0.53"]\n', "validation.resolvers: "),
    ('[validation]\nresolvers = ["dns.google:53"]\n', "validation.resolvers: "),
    ('[validation]\nresolvers = "10.0.0.53:53"\n', "validation.resolvers: "),
    ('[validation]\nhosts = { "a.bluerobin.local" = "300.1.1.1" }\n', "validation.hosts: "),
    ('[storage]\nurl = "mysql://ca@db/ca"\n', "storage.url: "),
    ('[storage]\nurl = "ca.db"\n', "storage.url: "),
    ("[storage]\npool_size = 0\n", "storage.pool_size: "),
    ("[storage]\npool_size = 1001\n", "storage.pool_size: "),
    ('[storage]\npool_size = "10"\n', "storage.pool_size: "),
    ("[storage]\npool_size = true\n", "storage.pool_size: "),
    ("[storage]\npool_size = 2.5\n", "storage.pool_size: "),
    ('[server]\nexternal_url = "http://ca.bluerobin.local"\n', "server.external_url: "),
    ('[server]\nexternal_url = "https://ca.bluerobin.local/?q"\n', "server.external_url: "),
    ('[server]\nexternal_url = "https://ca.bluerobin.local:https"\n', "server.external_url: "),
    ('[server]\nexternal_url = "https://ca.bluerobin.local:99999"\n', "server.external_url: "),
    ('[server]\nexternal_url = "https://:443"\n', "server.external_url: "),
    ('[acme]\neab_required = "yes"\n', "acme.eab_required: "),
    # a PKCS#11 URI that RFC 7512 refuses is not taken for a relative key file's path
    ('[ca]\nintermediate_key = "pkcs11:token=acme-ca;object=inter%zz"\n',
     "ca.intermediate_key: "),
    ('[ca]\nintermediate_key = "PKCS11:token=a;token=b"\n', "ca.intermediate_key: "),
    ('[ca]\nintermediate_key = "pkcs11:object=k?pin-source=file:acme-ca.pin"\n',
     "ca.intermediate_key: "),
    ("[ca]\npkcs11_module = 1\n", "ca.pkcs11_module: "),
]


def assert_one_line_error(tmp_path: Path, text: str, start: str) -> None:
    """The config file `text` is refused with one line starting with `start`."""
    path = write_config(tmp_path / "acme-ca.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(start), message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "start"), BAD_VALUES)
def test_a_bad_value_is_one_line_naming_its_key(tmp_path: Path, text: str, start: str) -> None:
    assert_one_line_error(tmp_path, text, start)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1d12h", 129600),
        (" 7D ", 604800),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["7x", "0d", "0s", "", " ", "d", "1.5h", "-1d", "1h 30m", "h1"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(86400, "1d"), (5400, "90m"), (3600, "1h"), (90, "90s"), (172800, "2d")]
)
def test_format_duration_is_the_shortest_exact_text(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("text", ["1h30m", "90s", "7d", "25h", "1d1s", "59m"])
def test_durations_round_trip(text: str) -> None:
    delta = parse_duration(text)
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:53", ("127.0.0.1", 53)),
        ("[::1]:8555", ("::1", 8555)),
        ("ca.example:443", ("ca.example", 443)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


def test_parse_host_port_default_and_refusals() -> None:
    assert parse_host_port("ca.example", default_port=53) == ("ca.example", 53)
    for text in ("ca.example", ":53", "host:65536", "host:-1"):
        with pytest.raises(ValueError, match="host:port"):
            parse_host_port(text)


def test_a_postgresql_url_and_its_pool_size(tmp_path: Path) -> None:
    url = "postgresql://acme@db.bluerobin.local/acme?sslmode=verify-full&sslrootcert=/etc/ca.pem"
    path = write_config(tmp_path / "acme-ca.toml",
                        f'[storage]\nurl = "{url}"\npool_size = 1000\n')
    config = load_config(path)
    assert (config.storage.url, config.storage.pool_size) == (url, 1000)


@pytest.mark.parametrize("url", ["mysql://acme:hunter2@db/acme", "hunter2@db/acme"])
def test_a_refused_storage_url_is_not_repeated(tmp_path: Path, url: str) -> None:
    """A database URL may hold a password: the message names what is wrong, not the URL."""
    path = write_config(tmp_path / "acme-ca.toml", f'[storage]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match=r"^storage\.url: ") as caught:
        load_config(path)
    assert "hunter2" not in str(caught.value)


EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def test_the_examples_token_lines_parse_when_uncommented(tmp_path: Path) -> None:
    """config.example.toml's [ca] lines for a key on a PKCS#11 token, uncommented as an
    operator would: an RFC 7512 URI (pin-source a file) and the module's path."""
    text = EXAMPLE.read_text(encoding="utf-8")
    token_lines = [line for line in text.splitlines()
                   if line.startswith(('# intermediate_key = "pkcs11:', "# pkcs11_module = "))]
    assert len(token_lines) == 2, token_lines
    for line in token_lines:
        text = text.replace(line, line.removeprefix("# "))
    config = load_config(write_config(tmp_path / "acme-ca.toml", text))
    uri = config.ca.intermediate_key
    assert not isinstance(uri, Path)
    assert (uri.token, uri.object) == ("acme-ca", "intermediate")
    assert uri.pin_source == Path("/run/secrets/acme-ca-pin")
    assert config.ca.pkcs11_module == Path("/usr/lib/softhsm/libsofthsm2.so")


def test_workers_auto_is_one_per_core_this_process_may_run_on(tmp_path: Path) -> None:
    """"auto" counts the cores of the process's affinity (taskset, a container's
    cpuset), not the machine's: pinned to one core, it is 1 where os.cpu_count() is
    not. A number is taken as it is, from the file or from --workers' text. (A cgroup
    CPU quota on the machine that runs the tests may bound it further: the next test.)"""
    path = write_config(tmp_path / "acme-ca.toml", '[server]\nworkers = "auto"\n')
    config = load_config(path)
    assert config.server.workers == config_values.available_cores()
    assert config.server.workers <= len(os.sched_getaffinity(0))
    assert config.server.workers_auto
    pinned = subprocess.run(
        [sys.executable, "-c", "import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity"
         "(0))}); from acme_ca.config import load_config; "
         "print(load_config(None, {'server.workers': 'auto'}).server.workers)"],
        capture_output=True, text=True, check=True, timeout=60)
    assert pinned.stdout.strip() == "1", pinned.stdout
    for given, count in ((3, 3), ("4", 4)):
        server = load_config(None, {"server.workers": given}).server
        assert (server.workers, server.workers_auto) == (count, False)


@pytest.mark.parametrize("value", ['"0"', '"-1"', '"many"', "1.5", "0", "-1", "true", '""'])
def test_a_bad_workers_value_names_the_key_and_the_accepted_forms(
    tmp_path: Path, value: str
) -> None:
    """Zero, a negative count, a word other than "auto", a fraction, a boolean or an
    empty string, quoted or not, are refused in one line that names server.workers and
    says what it takes."""
    assert_one_line_error(tmp_path, f"[server]\nworkers = {value}\n", "server.workers: ")
    with pytest.raises(ConfigError, match=r"positive number of processes, or 'auto'"):
        load_config(write_config(tmp_path / "acme-ca.toml", f"[server]\nworkers = {value}\n"))


@pytest.mark.parametrize(("cpu_max", "cores"), [
    ("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000\n", 2),
    ("50000 100000\n", 1), ("100000000 100000\n", None), ("garbage\n", None), (None, None),
])
def test_workers_auto_stays_within_a_cgroup_cpu_quota(
    tmp_path: Path, cpu_max: str | None, cores: int | None
) -> None:
    """A container's CPU limit (cgroup v2 cpu.max: "<quota> <period>", as
    `docker --cpus` and a Kubernetes CPU limit write it) bounds "auto", rounded up: a
    2-CPU limit on a 64-core node is 2 workers, not 64. No quota ("max"), no file or
    an unreadable one: the affinity alone counts. (cgroup v1: tests/test_cpu_quota.py.)"""
    own = tmp_path / "self-cgroup"
    own.write_text("0::/\n", encoding="ascii")  # a container's own cgroup namespace
    if cpu_max is not None:
        (tmp_path / "cpu.max").write_text(cpu_max, encoding="ascii")
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if cores is None else min(affinity, cores)
    assert config_values.available_cores(tmp_path, own) == expected


@pytest.mark.parametrize(("limits", "cores"), [
    ({"system.slice/acme-ca.service": "100000 100000"}, 1),  # systemd's CPUQuota=100%
    ({"system.slice": "50000 100000", "system.slice/acme-ca.service": "max 100000"}, 1),
    ({"system.slice/acme-ca.service": "max 100000", "other.slice": "50000 100000"}, None),
])
def test_workers_auto_stays_within_the_quota_of_its_own_cgroup_and_its_parents(
    tmp_path: Path, limits: dict[str, str], cores: int | None
) -> None:
    """Without a cgroup namespace (a systemd unit's ``CPUQuota=``, a nested slice) the
    quota is not at the hierarchy's root but on the process's own cgroup, as
    /proc/self/cgroup names it ("0::/system.slice/acme-ca.service"), or on one of its
    parents: the smallest on the way up bounds "auto"; another cgroup's does not."""
    own = tmp_path / "self-cgroup"
    own.write_text("0::/system.slice/acme-ca.service\n", encoding="ascii")
    root = tmp_path / "cgroup"
    for group, cpu_max in limits.items():
        (root / group).mkdir(parents=True, exist_ok=True)
        (root / group / "cpu.max").write_text(cpu_max + "\n", encoding="ascii")
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if cores is None else min(affinity, cores)
    assert config_values.available_cores(root, own) == expected


def test_a_huge_workers_value_is_refused_not_forked(tmp_path: Path) -> None:
    """More than MAX_WORKERS (a typo's 10**20) is refused at load, before any fork;
    1024 itself, given as --workers' text, is taken."""
    assert_one_line_error(tmp_path, "[server]\nworkers = 100000000000000000000\n",
                          "server.workers: ")
    assert load_config(None, {"server.workers": "1024"}).server.workers == 1024


def test_workers_auto_on_a_host_of_more_cores_than_the_bound_starts_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """"auto" keeps to the same MAX_WORKERS bound as a number: a 4096-core host starts
    1024 workers, not 4096."""
    monkeypatch.setattr(config_values, "available_cores", lambda: 4096)
    assert load_config(None, {"server.workers": "auto"}).server.workers == 1024
