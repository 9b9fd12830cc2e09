"""`workers = "auto"` within a cgroup v1 CPU quota (cpu.cfs_quota_us / cpu.cfs_period_us),
found as the kernel shows it: the `cpu` controller's line of /proc/self/cgroup mapped
through /proc/self/mountinfo. Each test builds the files in tmp_path: the v1 hierarchy,
the process's cgroup file and its mountinfo. (cgroup v2 alone: tests/test_config.py;
here only a v2 path that leaves the hierarchy's root.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from acme_ca import config_values, cpu_quota

DOCKER_ID = "4f1c0e2a9b7d"


def machine(tmp_path: Path, cgroup: str, mounts: list[tuple[str, str, str]],
            quotas: dict[str, str]) -> tuple[Path, Path]:
    """Write /proc/self/cgroup's text ``cgroup``; a mountinfo line per (mount root,
    mount point under tmp_path, super options) of ``mounts``; and each
    ``{directory under tmp_path: "<quota> <period>"}`` as cpu.cfs_quota_us and
    cpu.cfs_period_us. Returns (own, mountinfo)."""
    own, mountinfo = tmp_path / "self-cgroup", tmp_path / "mountinfo"
    own.write_text(cgroup, encoding="ascii")
    lines = ["23 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/l",
             "31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755"]
    for number, (root, point, options) in enumerate(mounts):
        where = str(tmp_path / point).replace(" ", "\\040")  # as the kernel escapes it
        lines.append(f"{40 + number} 31 0:{40 + number} {root} {where} ro,nosuid,nodev "
                     f"master:{9 + number} - cgroup cgroup rw,{options}")
        (tmp_path / point).mkdir(parents=True, exist_ok=True)
    mountinfo.write_text("\n".join(lines) + "\n", encoding="ascii")
    for directory, text in quotas.items():
        quota, period = text.split()
        (tmp_path / directory).mkdir(parents=True, exist_ok=True)
        (tmp_path / directory / "cpu.cfs_quota_us").write_text(quota + "\n", encoding="ascii")
        (tmp_path / directory / "cpu.cfs_period_us").write_text(period + "\n", encoding="ascii")
    return own, mountinfo


def quota_of(tmp_path: Path, own: Path, mountinfo: Path) -> int | None:
    return cpu_quota.cpu_quota(tmp_path / "no-v2", own, mountinfo=mountinfo)


@pytest.mark.parametrize(("limits", "cores"), [
    ({"cpu": "200000 100000"}, 2),  # docker run --cpus=2
    ({"cpu": "150000 100000"}, 2),  # --cpus=1.5, rounded up
    ({"cpu": "50000 100000"}, 1),
    ({"cpu": "-1 100000"}, None),  # no --cpus
    ({"cpu/docker/" + DOCKER_ID: "50000 100000"}, None),  # a host's path: not this mount
])
def test_a_docker_containers_v1_quota_is_at_its_mount_point(
    tmp_path: Path, limits: dict[str, str], cores: int | None
) -> None:
    """Docker on cgroup v1 without a cgroup namespace: /proc/self/cgroup says
    /docker/<id>, and the cpu hierarchy is mounted with that same cgroup as its root, so
    the container's own cgroup is the mount point itself; what lies above the mount
    point (the host's, in tmp_path's "cpu"'s parent here) is not the container's."""
    own, mountinfo = machine(
        tmp_path, f"12:cpu,cpuacct:/docker/{DOCKER_ID}\n1:name=systemd:/docker/{DOCKER_ID}\n",
        [(f"/docker/{DOCKER_ID}", "cpu", "cpu,cpuacct")], {"": "50000 100000", **limits})
    assert quota_of(tmp_path, own, mountinfo) == cores


@pytest.mark.parametrize(("limits", "cores"), [
    ({"cpu/system.slice": "100000 100000",
      "cpu/system.slice/acme-ca.service": "-1 100000"}, 1),  # a parent's quota
    ({"cpu/system.slice": "400000 100000",
      "cpu/system.slice/acme-ca.service": "300000 100000"}, 3),  # the smallest
    ({"cpu": "100000 100000", "cpu/system.slice/acme-ca.service": "-1 100000"}, 1),
    ({"cpu/system.slice/acme-ca.service": "-1 100000",
      "cpu/other.slice": "100000 100000"}, None),  # another cgroup's
    ({"cpu/system.slice/acme-ca.service": "-1 100000", "cpu/system.slice": "-1 100000",
      "cpu": "-1 100000"}, None),  # -1: no quota anywhere
])
def test_a_hosts_v1_quota_on_its_own_cgroup_or_a_parent(
    tmp_path: Path, limits: dict[str, str], cores: int | None
) -> None:
    """On a cgroup v1 host (RHEL 8, a systemd unit's CPUQuota=) the hierarchy's root is
    mounted: the process's cgroup is its path under the mount point, and the smallest
    quota of it and of every cgroup above it, up to the mount point, bounds "auto"."""
    own, mountinfo = machine(tmp_path, "4:cpu,cpuacct:/system.slice/acme-ca.service\n",
                             [("/", "cpu", "cpu,cpuacct")], limits)
    assert quota_of(tmp_path, own, mountinfo) == cores


@pytest.mark.parametrize(("cgroup", "mounts", "cores"), [
    ("6:cpu,cpuacct:/acme", [("cpu,cpuacct", "cpu,cpuacct")], 1),
    ("6:cpuacct,cpu:/acme", [("cpuacct,cpu", "cpuacct,cpu")], 1),
    ("7:cpuacct:/elsewhere\n6:cpu:/acme",  # each controller on its own
     [("cpuacct", "cpuacct"), ("cpu", "cpu")], 1),
    ("7:cpuacct:/acme", [("cpuacct", "cpuacct")], None),  # accounting only: no cpu
    ("6:cpu,cpuacct:/acme", [("cpuacct", "cpuacct")], None),  # no cpu hierarchy mounted
    ("5:cpuset:/acme", [("cpuset", "cpuset")], None),
])
def test_only_the_cpu_controllers_hierarchy_counts(
    tmp_path: Path, cgroup: str, mounts: list[tuple[str, str]], cores: int | None
) -> None:
    """The cpu controller may share a hierarchy (`cpu,cpuacct`, as systemd mounts it) or
    have its own (`cpu`, beside a `cpuacct` whose cgroup may differ); a hierarchy of
    only `cpuacct` or `cpuset` has no CPU quota, whatever its directory holds."""
    directories = [f"fs/{name}" for name, _ in mounts]
    own, mountinfo = machine(
        tmp_path, f"{cgroup}\n3:name=systemd:/acme\n",
        [("/", directory, options) for directory, (_, options) in zip(directories, mounts,
                                                                     strict=True)],
        {directory + "/acme": "100000 100000" for directory in directories})
    assert quota_of(tmp_path, own, mountinfo) == cores


@pytest.mark.parametrize(("v1", "v2", "cores"), [
    ("100000 100000", "300000 100000", 1),
    ("300000 100000", "200000 100000", 2),
    ("-1 100000", "200000 100000", 2),
    ("200000 100000", "max 100000", 2),
    ("-1 100000", "max 100000", None),
])
def test_a_hybrid_hosts_smaller_quota_wins(
    tmp_path: Path, v1: str, v2: str, cores: int | None
) -> None:
    """Where both hierarchies exist (systemd's hybrid mode), each may carry a quota:
    the smaller one bounds "auto"."""
    own, mountinfo = machine(tmp_path, "5:cpu,cpuacct:/acme.service\n0::/acme.service\n",
                             [("/", "v1/cpu,cpuacct", "cpu,cpuacct")],
                             {"v1/cpu,cpuacct/acme.service": v1})
    (tmp_path / "v2" / "acme.service").mkdir(parents=True)
    (tmp_path / "v2" / "acme.service" / "cpu.max").write_text(v2 + "\n", encoding="ascii")
    assert cpu_quota.cpu_quota(tmp_path / "v2", own, mountinfo=mountinfo) == cores


def test_the_mount_whose_root_holds_the_cgroup_translates_it(tmp_path: Path) -> None:
    """A cpu hierarchy mounted twice (a bind mount of another container's cgroup): the
    mount whose root is the process's cgroup or one above it maps the path; a root that
    is only a prefix of its text ("/docker/4f1c" of "/docker/4f1c0e2a9b7d") or another
    cgroup is not the process's."""
    own, mountinfo = machine(
        tmp_path, f"12:cpu,cpuacct:/docker/{DOCKER_ID}/app\n",
        [(f"/docker/{DOCKER_ID[:4]}", "prefix", "cpu,cpuacct"),
         ("/kubepods/pod1", "other", "cpu,cpuacct"),
         (f"/docker/{DOCKER_ID}", "mine", "cpu,cpuacct")],
        {"prefix": "100000 100000", "prefix/app": "100000 100000",
         "other": "100000 100000", "mine": "300000 100000", "mine/app": "-1 100000"})
    assert quota_of(tmp_path, own, mountinfo) == 3


GOOD_CGROUP = "4:cpu,cpuacct:/acme\n"
GOOD_MOUNTINFO = "41 31 0:41 / {point} ro - cgroup cgroup rw,cpu,cpuacct\n"


@pytest.mark.parametrize(("cgroup", "mountinfo", "quota", "period"), [
    (b"\xff\xfe\x00garbage", None, b"100000", b"100000"),
    (b"cpu\n", None, b"100000", b"100000"),
    (b"4:cpu\n", None, b"100000", b"100000"),
    (b"4:cpu,cpuacct:acme\n", None, b"100000", b"100000"),  # not an absolute path
    (b"4:cpu,cpuacct:/../../acme\n", None, b"100000", b"100000"),  # outside the mount
    (b"4:cpu,cpuacct:/acme\x00\n", None, b"100000", b"100000"),
    (None, b"", b"100000", b"100000"),
    (None, b"\xff\xfe garbage\n", b"100000", b"100000"),
    (None, b"41 31 0:41 / {point} ro - cgroup\n", b"100000", b"100000"),  # cut short
    (None, b"41 31 0:41 / {point} ro cgroup cgroup rw,cpu\n", b"100000", b"100000"),
    (None, b"41 31 0:41 /acme {point} - cgroup cgroup rw,cpu\n", b"100000", b"100000"),
    (None, None, b"garbage", b"100000"),
    (None, None, b"", b"100000"),
    (None, None, b"1.5", b"100000"),
    (None, None, b"-5", b"100000"),
    (None, None, b"100000", b"0"),
    (None, None, b"100000", b"-100000"),
    (None, None, b"100000", b"\xff\xfe"),
    (None, None, b"100000", None),
])
def test_garbage_is_no_quota_never_an_error(
    tmp_path: Path, cgroup: bytes | None, mountinfo: bytes | None, quota: bytes,
    period: bytes | None
) -> None:
    """Whatever is in /proc/self/cgroup, /proc/self/mountinfo or the quota files,
    unreadable or malformed, is "no quota": "auto" falls back to the affinity rather
    than failing at startup (the good files of each case give 1 core: next test)."""
    point = tmp_path / "cpu"
    (point / "acme").mkdir(parents=True)
    own, info = tmp_path / "self-cgroup", tmp_path / "mountinfo"
    own.write_bytes(GOOD_CGROUP.encode() if cgroup is None else cgroup)
    info.write_bytes((GOOD_MOUNTINFO.encode() if mountinfo is None else mountinfo)
                     .replace(b"{point}", str(point).encode()))
    (point / "acme" / "cpu.cfs_quota_us").write_bytes(quota)
    if period is not None:
        (point / "acme" / "cpu.cfs_period_us").write_bytes(period)
    assert quota_of(tmp_path, own, info) is None
    assert config_values.available_cores(tmp_path / "no-v2", own, mountinfo=info) == len(
        os.sched_getaffinity(0))


def test_good_files_beside_garbage_still_count(tmp_path: Path) -> None:
    """The garbage test's good files give a quota, also with garbage lines around them
    and a mount point the kernel escaped (a space is \\040); and "auto" is bounded by it:
    1 worker on this machine, whatever its core count."""
    point = tmp_path / "cgroup v1" / "cpu"
    (point / "acme").mkdir(parents=True)
    own, info = tmp_path / "self-cgroup", tmp_path / "mountinfo"
    own.write_text("garbage\n\n7:\n" + GOOD_CGROUP, encoding="ascii")
    info.write_text("garbage\n- - -\n" + GOOD_MOUNTINFO.format(
        point=str(point).replace(" ", "\\040")), encoding="ascii")
    (point / "acme" / "cpu.cfs_quota_us").write_text("100000\n", encoding="ascii")
    (point / "acme" / "cpu.cfs_period_us").write_text("100000\n", encoding="ascii")
    assert quota_of(tmp_path, own, info) == 1
    assert config_values.available_cores(tmp_path / "no-v2", own, mountinfo=info) == 1
    assert quota_of(tmp_path, tmp_path / "missing", tmp_path / "missing") is None
    assert quota_of(tmp_path, own, tmp_path) is None  # a directory, not a file


@pytest.mark.parametrize("cgroup", ["0::/../sibling\n", "0::/../../../sibling\n"])
def test_a_v2_cgroup_outside_the_hierarchys_root_is_no_quota(tmp_path: Path,
                                                             cgroup: str) -> None:
    """A cgroup v2 path that leaves the root ("/../x": the process moved out of its
    cgroup namespace's root) names no cgroup under /sys/fs/cgroup, as in v1 (the garbage
    test's "/../../acme"): no quota, rather than the quotas of the root (not above the
    process) and of directories outside the hierarchy read as if they were its."""
    root = tmp_path / "v2" / "ns"
    for directory in (root, root.parent, root.parent / "sibling", tmp_path / "sibling"):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text("100000 100000\n", encoding="ascii")
    own = tmp_path / "self-cgroup"
    own.write_text(cgroup, encoding="ascii")
    assert cpu_quota.cpu_quota(root, own, mountinfo=tmp_path / "no-mountinfo") is None


@pytest.mark.parametrize("name", ["cgroup\u00a0v1", "cgroup\u2028v1", "cgroup\x85v1"])
def test_a_mount_point_with_a_unicode_space_is_one_field(tmp_path: Path, name: str) -> None:
    """mountinfo escapes only a space, a tab, a newline and a backslash (proc(5)); a
    no-break space or a line separator in a path is written as its UTF-8 bytes, and is
    part of the field, not a boundary between two."""
    point = tmp_path / name / "cpu"
    (point / "acme").mkdir(parents=True)
    own, info = tmp_path / "self-cgroup", tmp_path / "mountinfo"
    own.write_text(GOOD_CGROUP, encoding="ascii")
    info.write_text(GOOD_MOUNTINFO.format(point=point), encoding="utf-8")
    (point / "acme" / "cpu.cfs_quota_us").write_text("100000\n", encoding="ascii")
    (point / "acme" / "cpu.cfs_period_us").write_text("100000\n", encoding="ascii")
    assert quota_of(tmp_path, own, info) == 1
