"""How many cores this process may use: what `workers = "auto"` starts one worker for.

The CPU affinity (taskset, a container's cpuset) says which cores the process may run
on, but not how much of them: a container's CPU limit (`docker run --cpus=2`, a
Kubernetes CPU limit, a systemd unit's `CPUQuota=`) is a quota of CPU time per period,
set on the process's cgroup or on one above it. A 2-CPU limit on a 64-core node is 2
workers, not 64, which would each get 1/32 of a core and 64 times the memory.

The kernel shows the quota in one of two forms, and a hybrid host has both:

- cgroup v2: ``cpu.max`` ("<quota> <period>", or "max <period>" for none) in the
  process's cgroup, which the "0::/path" line of /proc/self/cgroup names under the
  hierarchy's root (/sys/fs/cgroup).
- cgroup v1 (RHEL 8, older Docker and Kubernetes nodes): ``cpu.cfs_quota_us`` (-1 for
  none) and ``cpu.cfs_period_us`` in the process's cgroup of the hierarchy that has the
  ``cpu`` controller. Its line in /proc/self/cgroup ("4:cpu,cpuacct:/path", controllers
  comma-separated) gives the path within that hierarchy; /proc/self/mountinfo says where
  the hierarchy is mounted and which of its cgroups is the mount's root. Docker without a
  cgroup namespace mounts the container's own cgroup (/docker/<id>) as the root, so the
  path translates to the mount point itself. (Go's uber-go/automaxprocs and the JDK's
  container support find it the same way.)

The smallest quota of the process's cgroup and every cgroup above it (up to the mount
point, in v1: what lies above is not visible) counts, in cores rounded up. Anything
missing, unreadable or malformed counts as no quota: "auto" then falls back on the
affinity, and startup never fails over it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")  # cgroup v2's hierarchy; cpu.max: "<quota> <period>"
OWN_CGROUP = Path("/proc/self/cgroup")  # "0::/path" (v2), "4:cpu,cpuacct:/path" (v1)
MOUNTINFO = Path("/proc/self/mountinfo")  # where each v1 hierarchy is mounted
_ESCAPED = re.compile(r"\\([0-7]{3})")  # mountinfo writes a space in a path as \040


def available_cores(root: Path = CGROUP_ROOT, own: Path = OWN_CGROUP, *,
                    mountinfo: Path = MOUNTINFO) -> int:
    """The cores this process may run on: its CPU affinity (as taskset or a container's
    cpuset set it), or the machine's count where there is no affinity (macOS), and no
    more than a cgroup v1 or v2 CPU quota allows, rounded up (``docker --cpus=1.5``, a
    Kubernetes CPU limit: 2 on a 64-core node means 2, not 64; a systemd unit's
    ``CPUQuota=``)."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    quota = cpu_quota(root, own, mountinfo=mountinfo)
    return max(1, cores if quota is None else min(cores, quota))


def cpu_quota(root: Path = CGROUP_ROOT, own: Path = OWN_CGROUP, *,
              mountinfo: Path = MOUNTINFO) -> int | None:
    """The smallest CPU quota, in cores rounded up, of this process's cgroup and of each
    cgroup above it, cgroup v2 (``own``'s "0::" line names the cgroup under ``root``:
    "/" in a container's cgroup namespace, the unit's path under systemd) and cgroup v1
    (``own``'s cpu line, mapped through ``mountinfo``) alike; None where none is set or
    nothing can be read."""
    lines = _lines(own)
    quotas = [_v2_quota(root, lines), _v1_quota(lines, mountinfo)]
    return min((quota for quota in quotas if quota is not None), default=None)


def _lines(path: Path) -> list[str]:
    """``path``'s lines; none if it cannot be read (no /proc on macOS). A name that is
    not UTF-8 stays the bytes it was (surrogateescape), as the file system has it. Only
    a newline ends a line, not every character ``splitlines`` takes for one (U+2028,
    U+0085...), which a cgroup's or a mount point's name may hold."""
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape").split("\n")
    except (OSError, ValueError):
        return []


def _cores(quota: int, period: int) -> int | None:
    """A quota of CPU time per period in cores, rounded up; None for none (v1's -1)."""
    if quota < 0 or period <= 0:
        return None
    return max(1, -(-quota // period))


def _smallest(top: Path, group: Path, read: Callable[[Path], int | None]) -> int | None:
    """The smallest quota ``read`` finds in ``group`` and each directory above it, up to
    and including ``top``."""
    quotas = []
    for directory in (group, *group.parents):
        if not directory.is_relative_to(top):
            break
        try:
            quota = read(directory)
        except (OSError, ValueError):
            continue
        if quota is not None:
            quotas.append(quota)
    return min(quotas, default=None)


def _cpu_max(directory: Path) -> int | None:
    """cgroup v2: "<quota> <period>", or "max <period>" for none."""
    quota, period = (directory / "cpu.max").read_text(encoding="ascii").split()[:2]
    return None if quota == "max" else _cores(int(quota), int(period))


def _cfs_quota(directory: Path) -> int | None:
    """cgroup v1: a quota (-1 for none) and a period, in microseconds, a file each."""
    quota = (directory / "cpu.cfs_quota_us").read_text(encoding="ascii")
    period = (directory / "cpu.cfs_period_us").read_text(encoding="ascii")
    return _cores(int(quota), int(period))


def _v2_quota(root: Path, lines: list[str]) -> int | None:
    """The quota of the cgroup that the "0::" line names under ``root``; none for a path
    that leaves the root ("/../x", a process moved out of its cgroup namespace's root):
    what is above it is not visible, as in v1, and "/sys/fs/cgroup/../x" is no cgroup."""
    path = next((line[3:] for line in lines if line.startswith("0::")), "/")
    if not path.startswith("/") or ".." in PurePosixPath(path).parts:
        return None
    return _smallest(root, root / path.strip("/"), _cpu_max)


def _v1_quota(lines: list[str], mountinfo: Path) -> int | None:
    """The quota of the cpu controller's hierarchy: its cgroup path from ``lines`` (of
    /proc/self/cgroup), translated into a directory by the first cgroup (v1) mount of
    that hierarchy whose root contains it."""
    path = None
    for line in lines:
        number, _, rest = line.partition(":")
        controllers, _, cgroup = rest.partition(":")
        if number != "0" and "cpu" in controllers.split(","):
            path = cgroup
            break
    if path is None or not path.startswith("/"):
        return None
    for mount_root, mount_point in _cpu_mounts(mountinfo):
        within = PurePosixPath(path)
        if within != mount_root and mount_root not in within.parents:
            continue  # a cgroup outside what this mount shows
        relative = within.relative_to(mount_root)
        if ".." in relative.parts:
            continue
        return _smallest(mount_point, mount_point / relative, _cfs_quota)
    return None


def _cpu_mounts(mountinfo: Path) -> list[tuple[PurePosixPath, Path]]:
    """(mount root, mount point) of each cgroup v1 mount with the cpu controller, from
    mountinfo's lines: "<id> <parent> <dev> <root> <mount point> <options> [optional
    fields] - <type> <source> <super options>" (proc(5)), each field ended by one space
    (escaped in a name, as \\040), not by any Unicode space (a name's U+00A0)."""
    mounts = []
    for line in _lines(mountinfo):
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            kind, options = fields[separator + 1], fields[separator + 3]
        except (ValueError, IndexError):
            continue
        if kind == "cgroup" and "cpu" in options.split(","):
            root, point = (_ESCAPED.sub(lambda m: chr(int(m[1], 8)), field)
                           for field in fields[3:5])
            mounts.append((PurePosixPath(root), Path(point)))
    return mounts
