"""config-linux.md Control groups, read from the host's cgroup files of the container process
(found through the pid that `state` reports)."""

from __future__ import annotations

import os
from pathlib import Path

from conformance.harness import (
    Bundle,
    Context,
    cgroup_v2_only,
    check,
    expect,
    fail,
    host_cgroup_dir,
    skip,
)


def started_pid(ctx: Context, b: Bundle, may: bool = True) -> int:
    cid, p = ctx.create(b)
    if not p.ok:
        if may:
            skip(f"runtime refused the setting (allowed when unsupported): {p.tail(160)}")
        fail(f"create failed: {p.tail()}")
    return int(ctx.state(cid)["pid"])


def cg_file(pid: int, controller: str, v1_name: str, v2_name: str) -> str | None:
    if cgroup_v2_only():
        d = host_cgroup_dir(pid, "")
        name = v2_name
    else:
        d = host_cgroup_dir(pid, controller)
        name = v1_name
    if d is None or not (d / name).exists():
        return None
    return (d / name).read_text().strip()


def need(value: str | None, what: str) -> str:
    if value is None:
        fail(f"{what}: the container's cgroup has no such file (controller not applied)")
    return value  # type: ignore[return-value]


@check("cgroups.path_absolute")
def path_absolute(ctx: Context) -> None:
    """An absolute cgroupsPath is taken relative to the cgroup mount point."""
    b = ctx.sh_bundle("sleep 60")
    name = f"/conformance/{ctx.new_id()}"
    b.config["linux"]["cgroupsPath"] = name
    pid = started_pid(ctx, b, may=False)
    d = host_cgroup_dir(pid, "" if cgroup_v2_only() else "pids")
    expect(d is not None and str(d).endswith(name), f"cgroup is {d}, wanted …{name}")
    ctx.cleanups.append(lambda: _rmdir_all("/conformance"))


def _rmdir_all(rel: str) -> None:
    for base in Path("/sys/fs/cgroup").iterdir():
        p = base / rel.lstrip("/")
        if p.is_dir():
            for sub in sorted(p.rglob("*"), reverse=True):
                if sub.is_dir():
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
            try:
                p.rmdir()
            except OSError:
                pass


@check("cgroups.path_consistent")
def path_consistent(ctx: Context) -> None:
    """The same cgroupsPath lands in the same place every time."""
    name = f"/conformance/{ctx.new_id()}"
    seen = []
    for _ in range(2):
        b = ctx.sh_bundle("sleep 60")
        b.config["linux"]["cgroupsPath"] = name
        cid, p = ctx.create(b)
        expect(p.ok, f"create failed: {p.tail()}")
        seen.append(host_cgroup_dir(int(ctx.state(cid)["pid"]), "pids"))
        ctx.rt("delete", "--force", cid)
    ctx.cleanups.append(lambda: _rmdir_all("/conformance"))
    expect(seen[0] == seen[1] and seen[0] is not None, f"places differ: {seen}")


@check("cgroups.memory")
def memory(ctx: Context) -> None:
    """memory limit and reservation reach the memory controller."""
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["memory"] = {"limit": 128 << 20, "reservation": 64 << 20}
    pid = started_pid(ctx, b, may=False)
    lim = need(cg_file(pid, "memory", "memory.limit_in_bytes", "memory.max"), "memory limit")
    res = need(cg_file(pid, "memory", "memory.soft_limit_in_bytes", "memory.low"),
               "memory reservation")
    expect(lim == str(128 << 20) and res == str(64 << 20), f"limit {lim} reservation {res}")


@check("cgroups.memory_swappiness")
def swappiness(ctx: Context) -> None:
    """memory.swappiness reaches the controller (cgroup v1 only)."""
    if cgroup_v2_only():
        skip("cgroup v2 has no swappiness file")
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["memory"] = {"swappiness": 17}
    pid = started_pid(ctx, b)
    got = need(cg_file(pid, "memory", "memory.swappiness", "-"), "swappiness")
    expect(got == "17", f"swappiness {got}")


@check("cgroups.cpu")
def cpu(ctx: Context) -> None:
    """cpu shares, quota, period and cpuset cpus/mems reach the controllers."""
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000,
                                             "cpus": "0", "mems": "0"}
    pid = started_pid(ctx, b, may=False)
    if cgroup_v2_only():
        mx = need(cg_file(pid, "cpu", "-", "cpu.max"), "cpu.max")
        expect(mx == "50000 100000", f"cpu.max {mx}")
    else:
        shares = need(cg_file(pid, "cpu", "cpu.shares", "-"), "cpu.shares")
        quota = need(cg_file(pid, "cpu", "cpu.cfs_quota_us", "-"), "quota")
        period = need(cg_file(pid, "cpu", "cpu.cfs_period_us", "-"), "period")
        expect((shares, quota, period) == ("512", "50000", "100000"),
               f"shares {shares} quota {quota} period {period}")
    cpus = need(cg_file(pid, "cpuset", "cpuset.cpus", "cpuset.cpus"), "cpuset.cpus")
    mems = need(cg_file(pid, "cpuset", "cpuset.mems", "cpuset.mems"), "cpuset.mems")
    expect(cpus == "0" and mems == "0", f"cpus {cpus!r} mems {mems!r}")


@check("cgroups.cpu_realtime")
def cpu_realtime(ctx: Context) -> None:
    """realtimeRuntime/realtimePeriod reach the cpu controller, or are refused."""
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["cpu"] = {"realtimeRuntime": 0, "realtimePeriod": 1000000}
    pid = started_pid(ctx, b)
    got = cg_file(pid, "cpu", "cpu.rt_period_us", "-")
    if got is None:
        fail("accepted but the cgroup has no cpu.rt_period_us: the setting went nowhere")
    expect(got == "1000000", f"cpu.rt_period_us {got}")


@check("cgroups.cpu_idle")
def cpu_idle(ctx: Context) -> None:
    """cpu.idle reaches the controller, or is refused."""
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["cpu"] = {"idle": 1}
    pid = started_pid(ctx, b)
    got = cg_file(pid, "cpu", "cpu.idle", "cpu.idle")
    if got is None:
        fail("accepted but the cgroup has no cpu.idle file: the setting went nowhere")
    expect(got == "1", f"cpu.idle {got}")


@check("cgroups.pids")
def pids(ctx: Context) -> None:
    """pids.limit becomes pids.max."""
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["pids"] = {"limit": 42}
    pid = started_pid(ctx, b, may=False)
    got = need(cg_file(pid, "pids", "pids.max", "pids.max"), "pids.max")
    expect(got == "42", f"pids.max {got}")


@check("cgroups.pids_zero")
def pids_zero(ctx: Context) -> None:
    """pids.limit 0 is a real limit of zero, not 'unset'."""
    b = ctx.bundle(["sleep", "60"])
    b.config["linux"]["resources"]["pids"] = {"limit": 0}
    pid = started_pid(ctx, b)
    got = need(cg_file(pid, "pids", "pids.max", "pids.max"), "pids.max")
    expect(got == "0", f"pids.max is {got} for limit 0")


def _block_device() -> str | None:
    for dev in sorted(Path("/sys/block").iterdir()):
        if dev.name.startswith(("loop", "zram", "ram")):
            continue
        if (dev / "dev").exists():
            return (dev / "dev").read_text().strip()
    return None


@check("cgroups.blkio_throttle")
def blkio_throttle(ctx: Context) -> None:
    """throttleReadBpsDevice reaches the block IO controller."""
    dev = _block_device()
    if dev is None:
        skip("no block device on this host")
    major, minor = (int(x) for x in dev.split(":"))
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["blockIO"] = {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}
    pid = started_pid(ctx, b, may=False)
    got = need(cg_file(pid, "blkio", "blkio.throttle.read_bps_device", "io.max"), "throttle")
    expect(f"{major}:{minor}" in got and ("1048576" in got), f"throttle file: {got!r}")


@check("cgroups.blkio_weight")
def blkio_weight(ctx: Context) -> None:
    """blockIO.weight reaches the controller, or is refused."""
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["blockIO"] = {"weight": 300}
    pid = started_pid(ctx, b)
    got = cg_file(pid, "blkio", "blkio.weight", "io.weight") or cg_file(
        pid, "blkio", "blkio.bfq.weight", "io.bfq.weight")
    if got is None:
        fail("accepted but no weight file exists in the cgroup: the setting went nowhere")
    expect("300" in got, f"weight {got!r}")


def _controller_mounted(name: str) -> bool:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        if "cgroup" in f and name in f[-1].split(","):
            return True
    if cgroup_v2_only():
        return name in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
    return False


@check("cgroups.hugetlb")
def hugetlb(ctx: Context) -> None:
    """hugepageLimits reach the hugetlb controller, or create fails."""
    if not Path("/sys/kernel/mm/hugepages/hugepages-2048kB").exists():
        skip("no 2MB huge pages on this host")
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 << 21}]
    pid = started_pid(ctx, b)
    if not _controller_mounted("hugetlb"):
        fail("accepted although no hugetlb controller is reachable: the limit went nowhere")
    got = cg_file(pid, "hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max")
    expect(got == str(4 << 21), f"hugetlb limit {got}")


@check("cgroups.network")
def network(ctx: Context) -> None:
    """network.classID reaches net_cls, or create fails."""
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["network"] = {"classID": 1048577}
    pid = started_pid(ctx, b)
    if not _controller_mounted("net_cls"):
        fail("accepted although no net_cls controller is mounted: the setting went nowhere")
    got = cg_file(pid, "net_cls", "net_cls.classid", "-")
    expect(got == "1048577", f"classid {got}")


NODE = "/dev/loop-control"  # c 10:237


@check("cgroups.devices_order")
def devices_order(ctx: Context) -> None:
    """Device rules apply in order: allow rw then deny w leaves read-only access."""
    b = ctx.sh_bundle("(exec 3</dev/conf-tun) 2>/dev/null && echo R=ok || echo R=no; "
                      "(exec 3>/dev/conf-tun) 2>/dev/null && echo W=ok || echo W=no",
                      out_mount=False)
    if not Path(NODE).exists():
        skip(f"no {NODE} on this host")
    # A bind of the host node, not linux.devices: runtimes add allow rules of their own for
    # devices they create and for common ones (runc allows tun), which would blur what the
    # listed rules do. loop-control opens for reading and writing without privileges.
    b.config["mounts"].append({"destination": "/dev/conf-tun", "type": "bind",
                               "source": NODE, "options": ["bind"]})
    b.config["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 237, "access": "rw"},
        {"allow": False, "type": "c", "major": 10, "minor": 237, "access": "w"},
    ]
    r = ctx.run(b)
    expect(r.ok, f"run failed: {r.tail()}")
    expect("R=ok" in r.out and "W=no" in r.out, f"access seen: {r.out.split()}")


@check("cgroups.unified")
def unified(ctx: Context) -> None:
    """`unified` writes v2 files on a v2 host and is an error where v2 is not in use."""
    b = ctx.sh_bundle("sleep 60")
    b.config["linux"]["resources"]["unified"] = {"pids.max": "77"}
    cid, p = ctx.create(b)
    if not cgroup_v2_only():
        expect(not p.ok, "unified accepted although the host's controllers are on cgroup v1")
        return "refused on a cgroup v1 host"
    expect(p.ok, f"create failed: {p.tail()}")
    got = cg_file(int(ctx.state(cid)["pid"]), "pids", "-", "pids.max")
    expect(got == "77", f"pids.max {got}")


@check("cgroups.no_chown_v1")
def no_chown_v1(ctx: Context) -> None:
    """Under cgroup v1 the container cgroup is not handed to the container user."""
    if cgroup_v2_only():
        skip("host uses cgroup v2")
    b = ctx.sh_bundle("sleep 60")
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.config["linux"]["namespaces"].append({"type": "cgroup"})
    for m in b.config["mounts"]:
        if m["destination"] == "/sys/fs/cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"]
    pid = started_pid(ctx, b, may=False)
    d = host_cgroup_dir(pid, "pids")
    expect(d is not None and os.stat(d).st_uid == 0, f"{d} now belongs to uid 1000")
