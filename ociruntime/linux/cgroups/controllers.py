"""What the v1 and v2 drivers share (the same files or formats on both): device numbers in
blkio/io rules, rdma.max lines, the cpuset files, memory.checkBeforeUpdate, hugetlb limits and
stats, and the unified hierarchy's files that a hybrid v1 host also writes (unified keys,
subtree_control), so that v1 never loads v2.py. The drivers import it, so `delete` does:
it uses posix and ociruntime.lean, not `os`."""

import posix

from ociruntime import lean
from ociruntime.errors import CgroupError
from ociruntime.linux.cgroups import fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime.resources import (
        CpuResources,
        HugepageLimit,
        MemoryResources,
        RdmaLimit,
        ThrottleDevice,
        WeightDevice,
    )


def dev(entry: "WeightDevice | ThrottleDevice") -> str:
    return f"{entry.major}:{entry.minor}"


def rdma_lines(rdma: "dict[str, RdmaLimit]") -> list[str]:
    """rdma.max lines: `<device> hca_handle=N hca_object=M` (only the limits given)."""
    out = []
    for device, lim in rdma.items():
        parts = []
        if lim.hca_handles is not None:
            parts.append(f"hca_handle={lim.hca_handles}")
        if lim.hca_objects is not None:
            parts.append(f"hca_object={lim.hca_objects}")
        if parts:
            out.append(f"{device} {' '.join(parts)}")
    return out


def set_cpuset(cpuset_dir, cpu: "CpuResources") -> None:
    """cpu.cpus and cpu.mems (the order is irrelevant to the kernel; both must be non-empty
    for tasks to run). cpuset_dir(): the cpuset cgroup's directory, asked only when needed."""
    if cpu.cpus or cpu.mems:
        d = cpuset_dir()
        for key, value in (("cpus", cpu.cpus), ("mems", cpu.mems)):
            if value:
                fs.write_file(f"{d}/cpuset.{key}", value)


def refuse_limit_below_usage(mem: "MemoryResources", limit: int, cgroup_dir: str, usage_file: str) -> None:
    """memory.checkBeforeUpdate: a limit below what the cgroup uses now is refused, not set
    (setting it would make the kernel reclaim or OOM-kill at once)."""
    if mem.check_before_update and limit > 0:
        usage = fs.read_int(f"{cgroup_dir}/{usage_file}")
        if usage > limit:
            raise CgroupError(f"cgroup: memory limit {limit} is below the current usage {usage} of {cgroup_dir}")


def set_hugetlb(path: str, limits: "list[HugepageLimit]", limit_file: str = "max") -> None:
    """hugepageLimits into hugetlb.SIZE.max (v1: limit_file "limit_in_bytes")."""
    for entry in limits:
        size, limit = entry.page_size, str(entry.limit)
        fs.write_file(f"{path}/hugetlb.{size}.{limit_file}", limit)
        # Reservation accounting, which the spec prefers where the kernel has it.
        rsvd = f"{path}/hugetlb.{size}.rsvd.{limit_file}"
        if lean.exists(rsvd):
            fs.write_file(rsvd, limit)


def hugetlb_stats(path: str) -> dict:
    out = {}
    for name in posix.listdir(path):
        if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
            size = name[8:-8]
            events = fs.read_kv(f"{path}/hugetlb.{size}.events")
            out[size] = {"usage": fs.read_int(f"{path}/{name}"), "max": 0,
                         "failcnt": events.get("max", 0)}
    return out


def set_unified(path: str, unified: "dict[str, str]") -> None:
    """linux.resources.unified: each key is a file of the container's cgroup, written as given
    (one write per line: keyed files like io.max take one entry per write)."""
    available: list[str] | None = None
    for key, value in unified.items():
        if "/" in key or key.startswith("."):
            raise CgroupError(f"cgroup: invalid linux.resources.unified key {key!r}")
        ctrl = key.split(".", 1)[0]
        if ctrl != "cgroup":
            if available is None:
                available = fs.read_file(path + "/cgroup.controllers").split()
            if ctrl not in available:
                raise CgroupError(f"cgroup: unified key {key}: controller {ctrl} is not "
                                  f"enabled for {path} (see its cgroup.controllers)")
        lines = [ln for ln in str(value).split("\n") if ln.strip()] or [str(value)]
        for line in lines:
            fs.write_file(f"{path}/{key}", line)


def enable_controllers(mount: str, leaf: str, wanted: set[str] | None) -> None:
    """Enable controllers in cgroup.subtree_control from the mount root down to the leaf's
    parent: `wanted`, or everything each level offers when None. A level that refuses (a
    non-root cgroup with member processes, a threaded subtree, ...) is tolerated; the missing
    controller is reported when one of its files is written."""
    rel = leaf[len(mount):].strip("/").split("/")[:-1]
    level = mount
    for part in ["", *rel]:
        if part:
            level = level + "/" + part
        enabled = set(fs.read_file(level + "/cgroup.subtree_control").split())
        offered = set(fs.read_file(level + "/cgroup.controllers").split())
        missing = (offered if wanted is None else wanted & offered) - enabled
        if not missing:
            continue
        path = level + "/cgroup.subtree_control"
        try:
            fs.write_file(path, " ".join("+" + c for c in sorted(missing)))
        except CgroupError:
            # The write is all-or-nothing; retry one by one to get what can be had.
            for ctrl in sorted(missing):
                try:
                    fs.write_file(path, "+" + ctrl)
                except CgroupError:
                    pass
