"""What the v1 and v2 drivers share (the same files or formats on both): device numbers in
blkio/io rules, rdma.max lines, the cpuset files, memory.checkBeforeUpdate. Off the path of
the small commands (state/kill/delete): only the drivers' set() loads it."""

from ociruntime.errors import CgroupError
from ociruntime.linux.cgroups import fs


def dev(entry: dict) -> str:
    return f"{entry['major']}:{entry['minor']}"


def rdma_lines(rdma: dict) -> list[str]:
    """rdma.max lines: `<device> hca_handle=N hca_object=M` (only the limits given)."""
    out = []
    for device, lim in rdma.items():
        parts = []
        if lim.get("hcaHandles") is not None:
            parts.append(f"hca_handle={lim['hcaHandles']}")
        if lim.get("hcaObjects") is not None:
            parts.append(f"hca_object={lim['hcaObjects']}")
        if parts:
            out.append(f"{device} {' '.join(parts)}")
    return out


def set_cpuset(cpuset_dir, cpu: dict) -> None:
    """cpu.cpus and cpu.mems (the order is irrelevant to the kernel; both must be non-empty
    for tasks to run). cpuset_dir(): the cpuset cgroup's directory, asked only when needed."""
    if cpu.get("cpus") or cpu.get("mems"):
        d = cpuset_dir()
        for key in ("cpus", "mems"):
            if cpu.get(key):
                fs.write_file(f"{d}/cpuset.{key}", cpu[key])


def refuse_limit_below_usage(mem: dict, limit: int, cgroup_dir: str, usage_file: str) -> None:
    """memory.checkBeforeUpdate: a limit below what the cgroup uses now is refused, not set
    (setting it would make the kernel reclaim or OOM-kill at once)."""
    if mem.get("checkBeforeUpdate") and limit > 0:
        usage = fs.read_int(f"{cgroup_dir}/{usage_file}")
        if usage > limit:
            raise CgroupError(f"cgroup: memory limit {limit} is below the current usage {usage} of {cgroup_dir}")
