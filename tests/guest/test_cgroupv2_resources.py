"""cgroup v2 resources through the cgroupfs driver, each shown to take effect in the guest
(unified hierarchy, Linux 6.1): the value lands in the container's cgroup file and, where a
container can feel it, it does (OOM kill, CPU quota, fork failure, I/O throttle, hugetlb charge,
device EPERM); the init is born in its cgroup (clone3 CLONE_INTO_CGROUP). cgroup.kill on
`delete --force`, the `oom` events and pause/resume through cgroup.freeze are in
tests/integration/test_cgroup_kill.py, test_events_oom.py and test_pause_ps.py (marked
cgroupv2: they run here too, and on the v1 host). Where runc's cgroup v2 conversion matters
(cpu.weight, io.weight, `events --stats`), runc on the same bundle is the reference.

Several checks share one container to keep the file's time small under TCG; each assertion
names its resource."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import Runtime
from tests.integration.test_events_oom import LIMIT, OOM_LOOP, EventStream

MiB = 1 << 20


def cgroup_dir(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup" + line[3:])
    raise AssertionError(f"pid {pid} has no cgroup v2 entry")


def read(d: Path, name: str) -> str:
    return (d / name).read_text().strip()


def kv(d: Path, name: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in read(d, name).splitlines())}


def start(rt: Runtime, bundle, args: list[str], resources: dict | None = None, edit=None,
          warnings: list[str] | None = None) -> tuple[str, int, Path]:
    """`run -d` a container; its cgroup directory. `warnings` collects what run said on stderr."""
    def configure(cfg: dict) -> None:
        cfg["process"]["args"] = args
        cfg["linux"]["resources"].update(resources or {})
        if edit is not None:
            edit(cfg)
    cid = rt.new_id("r")
    res = rt.run("run", "-d", "-b", str(bundle(edit=configure)), cid, check=True, timeout=60)
    if warnings is not None:
        warnings.extend(res.stderr.decode().splitlines())
    pid = rt.state(cid)["pid"]
    return cid, pid, cgroup_dir(pid)


def in_container(pid: int, path: str) -> Path:
    return Path(f"/proc/{pid}/root{path}")


def wait_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} was not written within {timeout} s")


# ------------------------------------------------------------------------------------ clone3


def test_init_is_born_in_its_cgroup(oci: Runtime, bundle) -> None:
    """clone3 CLONE_INTO_CGROUP: stage1 (and so the init it forks) is born in the container's
    cgroup and never runs in the runtime's. The runtime runs in a cgroup of its own whose
    pids.max is 1, itself: a child forked there (to be moved afterwards, runc's way) would be
    refused with EAGAIN, while one born elsewhere is charged to the cgroup it is born in."""
    runtime_cg = Path(f"/sys/fs/cgroup/oci-rt-{uuid.uuid4().hex[:8]}")
    runtime_cg.mkdir()
    try:
        (runtime_cg / "pids.max").write_text("1")
        cid = oci.new_id("born")
        # An absolute cgroupsPath: a relative one would be below the runtime's cgroup, whose
        # pids.max counts its whole subtree.
        b = bundle(["sleep", "1000"], edit=lambda cfg: cfg["linux"].update(cgroupsPath=f"/{cid}"))
        res = oci.run("create", "-b", str(b), cid, timeout=60,
                      preexec_fn=lambda: (runtime_cg / "cgroup.procs").write_text("0"))
        assert res.returncode == 0, f"create from a cgroup that allows no fork: {res.stderr.decode()}"
        assert cgroup_dir(oci.state(cid)["pid"]) == Path(f"/sys/fs/cgroup/{cid}")
        assert kv(runtime_cg, "pids.events")["max"] == 0, "a fork was refused in the runtime's cgroup"
    finally:
        runtime_cg.rmdir()  # the runtime has exited: the cgroup is empty


# ------------------------------------------------------------------------------------ memory


def test_memory_max_low_swap_and_the_oom_kill_event(oci: Runtime, bundle) -> None:
    """memory.max: a dd past it is OOM-killed inside (exit 137), memory.events counts it and
    `events` reports it as runc does; memory.low from reservation, memory.swap.max from
    memory+swap minus memory (the spec's swap is v1's memsw)."""
    loop = OOM_LOOP.replace("2>/dev/null;", "2>/dev/null; echo $? >> /dev/shm/rc;")
    memory = {"limit": LIMIT, "reservation": 8 * MiB, "swap": LIMIT + 16 * MiB}
    cid, pid, d = start(oci, bundle, ["sh", "-c", loop], {"memory": memory})
    assert read(d, "memory.max") == str(LIMIT), "memory.max"
    assert read(d, "memory.low") == str(8 * MiB), "memory.low (from reservation)"
    assert read(d, "memory.swap.max") == str(16 * MiB), "memory.swap.max (memory+swap - memory)"
    stream = EventStream(oci, cid)
    try:
        stream.wait_for("oom", timeout=60)
        assert f'{{"type":"oom","id":"{cid}"}}' in stream.lines, \
            f"memory.max: no oom event from `events` within 60 s: {stream.lines[:3]}"
    finally:
        stream.stop()
    codes = wait_file(in_container(pid, "/dev/shm/rc")).split()
    assert "137" in codes, f"memory.max: dd past the limit was not SIGKILLed inside: exit codes {codes}"
    assert kv(d, "memory.events")["oom_kill"] >= 1, "memory.max: memory.events counts no oom_kill"


def test_memory_high_and_unified_keys_override(oci: Runtime, bundle) -> None:
    """linux.resources.unified: files written as given, after (so over) the converted v1-style
    values; a key of a controller the cgroup does not have is one clear error, nothing left."""
    unified = {"memory.high": "48M", "pids.max": "40", "cpu.weight": "42",
               "memory.oom.group": "1"}
    cid, _, d = start(oci, bundle, ["sleep", "1000"],
                      {"pids": {"limit": 100}, "cpu": {"shares": 2048}, "unified": unified})
    assert read(d, "memory.high") == str(48 * MiB), "memory.high (unified, with a suffix)"
    assert read(d, "pids.max") == "40", "unified pids.max must win over linux.resources.pids"
    assert read(d, "cpu.weight") == "42", "unified cpu.weight must win over cpu.shares"
    assert read(d, "memory.oom.group") == "1", "unified memory.oom.group"
    stats = json.loads(oci.run("events", "--stats", cid, check=True).stdout)["data"]
    assert stats["memory"]["usage"]["limit"] == (1 << 64) - 1, "events --stats: memory.max 'max' as runc prints it"

    bad = oci.new_id("bad")
    b = bundle(edit=lambda cfg: cfg["linux"]["resources"].update({"unified": {"rdma.bogus": "1"}}))
    res = oci.run("create", "-b", str(b), bad, timeout=60)
    err = res.stderr.decode()
    assert res.returncode == 1 and "rdma.bogus" in err and "Traceback" not in err, err
    assert not Path(f"/sys/fs/cgroup/{bad}").exists(), "a refused unified key left its cgroup behind"


# ------------------------------------------------------------------------------------ cpu


def test_cpu_quota_weight_and_cpuset(oci: Runtime, runc: Runtime, bundle) -> None:
    """cpu.max measured: a busy loop under a 20% quota uses about 20% of a CPU (usage_usec over
    wall time; TCG is slow and noisy, so 5-40%) and is throttled; cpu.weight from shares is
    runc's; cpuset.cpus/mems land and the process may only run on that CPU."""
    resources = {"cpu": {"quota": 20000, "period": 100000, "shares": 512, "cpus": "1", "mems": "0"}}
    _, pid, d = start(oci, bundle, ["sh", "-c", "while :; do :; done"], resources)
    assert read(d, "cpu.max") == "20000 100000", "cpu.max"
    assert read(d, "cpuset.cpus") == "1" and read(d, "cpuset.mems") == "0", "cpuset.cpus/mems"
    status = Path(f"/proc/{pid}/status").read_text()
    assert "Cpus_allowed_list:\t1\n" in status, f"cpuset: {status.splitlines()[-20:]}"
    before, t0 = kv(d, "cpu.stat")["usage_usec"], time.monotonic()
    time.sleep(4)
    after, t1 = kv(d, "cpu.stat"), time.monotonic()
    share = (after["usage_usec"] - before) / 1e6 / (t1 - t0)
    assert 0.05 <= share <= 0.40, f"cpu.max: a busy loop under a 20% quota used {share:.0%} of a CPU"
    assert after["nr_throttled"] > 0, "cpu.max: the busy loop was never throttled"

    _, _, rd = start(runc, bundle, ["sleep", "1000"], {"cpu": {"shares": 512}})
    assert read(d, "cpu.weight") == read(rd, "cpu.weight"), \
        f"cpu.weight from shares 512: ours {read(d, 'cpu.weight')}, runc's {read(rd, 'cpu.weight')}"


# ------------------------------------------------------------------------------------ pids


def test_pids_max_fork_fails_inside(oci: Runtime, bundle) -> None:
    # In a subshell: a shell whose fork fails gives up, and the init must live on to be read.
    script = ("(i=0; while [ $i -lt 10 ]; do sleep 1000 & i=$((i+1)); done) 2>/dev/shm/err; "
              "echo done > /dev/shm/done; exec sleep 1000")
    _, pid, d = start(oci, bundle, ["sh", "-c", script], {"pids": {"limit": 4}})
    assert read(d, "pids.max") == "4", "pids.max"
    wait_file(in_container(pid, "/dev/shm/done"))
    err = in_container(pid, "/dev/shm/err").read_text()
    assert "fork" in err, f"pids.max: forking past 4 tasks did not fail inside: {err!r}"
    assert int(read(d, "pids.current")) <= 4, "pids.max: more tasks than the limit"
    assert kv(d, "pids.events")["max"] >= 1, "pids.max: pids.events counts no refused fork"


# ------------------------------------------------------------------------------------ io


@pytest.fixture
def loop_device(tmp_path: Path):
    subprocess.run(["modprobe", "loop"], capture_output=True)
    image = Path("/var/tmp") / f"io-{tmp_path.name}.img"
    with open(image, "wb") as f:
        f.truncate(64 * MiB)
    dev = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
        image.unlink()


def test_io_max_and_weight_on_a_loop_device(oci: Runtime, runc: Runtime, bundle, loop_device: str) -> None:
    """io.max from the throttle lists (one line per device), measured: 4 MiB read at 1 MiB/s
    takes seconds. Weights as runc writes them: without BFQ io.weight gets the converted default
    and a per-device weight is skipped (with a warning from us); with BFQ on the device,
    io.bfq.weight gets both as given."""
    st = os.stat(loop_device)
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    dev = {"major": major, "minor": minor}
    weights = {"weight": 500, "weightDevice": [{**dev, "weight": 300}]}
    bio = {**weights, "throttleReadBpsDevice": [{**dev, "rate": MiB}],
           "throttleWriteIOPSDevice": [{**dev, "rate": 100}]}
    scheduler = Path(f"/sys/block/{Path(loop_device).name}/queue/scheduler")
    assert "bfq" not in scheduler.read_text(), "BFQ is already loaded: this test wants to start without it"

    def with_device(cfg: dict) -> None:
        cfg["linux"]["devices"] = [{"path": "/dev/blk", "type": "b", **dev, "fileMode": 0o600}]
    uptime = "cut -d' ' -f1 /proc/uptime"
    script = (f"{uptime} > /dev/shm/t0; dd if=/dev/blk of=/dev/null bs=64k count=64 2>/dev/shm/dd; "
              f"echo $? > /dev/shm/rc; {uptime} > /dev/shm/t1; sleep 1000")
    said: list[str] = []
    _, pid, d = start(oci, bundle, ["sh", "-c", script], {"blockIO": bio}, edit=with_device, warnings=said)
    line = next((ln for ln in read(d, "io.max").splitlines() if ln.startswith(f"{major}:{minor} ")), "")
    assert line == f"{major}:{minor} rbps={MiB} wbps=max riops=max wiops=100", f"io.max: {line!r}"
    rc = wait_file(in_container(pid, "/dev/shm/rc"), timeout=60).strip()
    took = float(wait_file(in_container(pid, "/dev/shm/t1"))) - float(in_container(pid, "/dev/shm/t0").read_text())
    assert rc == "0", f"io.max: reading the allowed block device failed: {in_container(pid, '/dev/shm/dd').read_text()}"
    assert took >= 2.5, f"io.max: 4 MiB at 1 MiB/s took only {took:.1f} s"
    _, _, rd = start(runc, bundle, ["sleep", "1000"], {"blockIO": weights})
    assert read(d, "io.weight") == read(rd, "io.weight") == "default 4950", \
        f"io.weight (blkio 500): ours {read(d, 'io.weight')!r}, runc's {read(rd, 'io.weight')!r}"
    assert any(f"weightDevice {major}:{minor}" in w for w in said), f"io.weight: no warning, device weight: {said}"

    subprocess.run(["modprobe", "bfq"], check=True, capture_output=True)
    scheduler.write_text("bfq")
    _, _, d = start(oci, bundle, ["sleep", "1000"], {"blockIO": weights})
    _, _, rd = start(runc, bundle, ["sleep", "1000"], {"blockIO": weights})
    assert read(d, "io.bfq.weight") == read(rd, "io.bfq.weight") == f"default 500\n{major}:{minor} 300", \
        f"io.bfq.weight: ours {read(d, 'io.bfq.weight')!r}, runc's {read(rd, 'io.bfq.weight')!r}"


# ------------------------------------------------------------------------------------ hugetlb


def hugepages_2m() -> bool:
    """Reserve a few 2 MiB pages for the test (the guest boots with none)."""
    nr = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
    if not nr.exists():
        return False
    if int(nr.read_text()) < 4:
        nr.write_text("4")
    return int(nr.read_text()) >= 4


def test_hugetlb_limit_is_charged(oci: Runtime, bundle) -> None:
    """hugetlb.2MB.max: inside, one 2 MiB huge page fits under a 2 MiB limit and a second
    allocation fails (fallocate on a hugetlbfs mount charges the cgroup)."""
    assert hugepages_2m(), "the guest kernel has no 2 MiB huge pages to test hugetlb with"

    def mount(cfg: dict) -> None:
        cfg["mounts"].append({"destination": "/hp", "type": "hugetlbfs", "source": "none",
                              "options": ["pagesize=2M"]})
    script = ("fallocate -l 2M /hp/a 2>/dev/shm/err; echo $? > /dev/shm/rc1; "
              "fallocate -l 4M /hp/b 2>>/dev/shm/err; echo $? > /dev/shm/rc2; sleep 1000")
    _, pid, d = start(oci, bundle, ["sh", "-c", script],
                        {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]}, edit=mount)
    assert read(d, "hugetlb.2MB.max") == str(2 * MiB), "hugetlb.2MB.max"
    if (d / "hugetlb.2MB.rsvd.max").exists():
        assert read(d, "hugetlb.2MB.rsvd.max") == str(2 * MiB), "hugetlb.2MB.rsvd.max"
    first = wait_file(in_container(pid, "/dev/shm/rc1")).strip()
    second = wait_file(in_container(pid, "/dev/shm/rc2")).strip()
    err = in_container(pid, "/dev/shm/err").read_text()
    assert first == "0", f"hugetlb: one huge page under the limit failed: {err}"
    assert second != "0", "hugetlb: a second huge page past the 2 MiB limit was allowed"
    assert int(read(d, "hugetlb.2MB.current")) == 2 * MiB, "hugetlb: the page is not charged"


# ------------------------------------------------------------------------------------ devices


def test_device_rules_through_bpf(oci: Runtime, bundle) -> None:
    """Device nodes made inside (mknod is allowed for all): /dev/zero's numbers open, a device
    the rules leave out fails with EPERM at open, whatever its driver would say."""
    def mknod_cap(cfg: dict) -> None:
        for kind in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][kind].append("CAP_MKNOD")
    script = ("mknod /dev/zero2 c 1 5 && head -c 4 /dev/zero2 | wc -c > /dev/shm/ok; "
              "mknod /dev/fuse2 c 10 229 && cat /dev/fuse2 2> /dev/shm/denied; sleep 1000")
    _, pid, d = start(oci, bundle, ["sh", "-c", script], edit=mknod_cap)
    assert wait_file(in_container(pid, "/dev/shm/ok")).strip() == "4", "devices: the allowed c 1:5 did not read"
    denied = wait_file(in_container(pid, "/dev/shm/denied"))
    assert "Operation not permitted" in denied, f"devices: c 10:229 was not refused with EPERM: {denied!r}"
    from ociruntime.linux.cgroups import ebpf

    assert len(ebpf.attached(str(d))) == 1, "devices: not exactly one device program on the cgroup"


# ------------------------------------------------------------------------------------ update


def test_update_changes_live_limits(oci: Runtime, bundle) -> None:
    cid, _, d = start(oci, bundle, ["sleep", "1000"],
                      {"memory": {"limit": 64 * MiB}, "pids": {"limit": 100}, "cpu": {"shares": 1024}})
    oci.run("update", "--memory", "96m", "--memory-reservation", "32m", "--memory-swap", "128m",
            "--cpu-quota", "30000", "--cpu-period", "50000", "--cpu-share", "256",
            "--cpuset-cpus", "0", "--pids-limit", "20", cid, check=True)
    got = {f: read(d, f) for f in ("memory.max", "memory.low", "memory.swap.max", "cpu.max",
                                   "cpu.weight", "cpuset.cpus", "pids.max")}
    assert got == {"memory.max": str(96 * MiB), "memory.low": str(32 * MiB),
                   "memory.swap.max": str(32 * MiB), "cpu.max": "30000 50000", "cpu.weight": "10",
                   "cpuset.cpus": "0", "pids.max": "20"}, f"update: {got}"
    res = subprocess.run(oci.cmd("update", "-r", "-", cid), capture_output=True, timeout=30,
                         input=json.dumps({"unified": {"memory.high": "80M"}, "pids": {"limit": 30}}).encode())
    assert res.returncode == 0, res.stderr
    assert (read(d, "memory.high"), read(d, "pids.max")) == (str(80 * MiB), "30"), "update -r -: unified and pids"


# ------------------------------------------------------------------------------------ stats


def test_events_stats_keys_match_runc(oci: Runtime, runc: Runtime, bundle) -> None:
    """`events --stats` on cgroup v2: the cpu, memory and pids records have runc's keys (docker
    stats and ctr task metrics read them) and the same limits, swap as memory+swap like runc.
    Allowed differences: memory.usage.max (memory.peak, which runc 1.1.5 does not read) and
    memory.cache (page cache, omitted by both when zero); runc's all-zero v2 `cpuset` record."""
    def keys(doc: object, prefix: str) -> set[str]:
        if not isinstance(doc, dict):
            return set()
        return {f"{prefix}/{k}" for k in doc} | {x for k, v in doc.items() if k != "raw"
                                                 for x in keys(v, f"{prefix}/{k}")}
    resources = {"memory": {"limit": 64 * MiB, "swap": 96 * MiB}, "pids": {"limit": 50},
                 "cpu": {"quota": 50000, "period": 100000}}
    docs = []
    for rt in (oci, runc):
        cid, _, _ = start(rt, bundle, ["sh", "-c", "while :; do :; done"], resources)
        time.sleep(1)  # some CPU time and throttling to report
        docs.append(json.loads(rt.run("events", "--stats", cid, check=True).stdout)["data"])
    ours, theirs = docs
    assert set(theirs) - {"cpuset"} <= set(ours), f"events --stats records: ours {sorted(ours)}, runc {sorted(theirs)}"
    for top in ("cpu", "memory", "pids"):
        mine, runcs = keys(ours[top], f"/{top}"), keys(theirs[top], f"/{top}")
        missing = runcs - mine - {"/memory/cache"}
        extra = mine - runcs - {"/memory/cache", "/memory/usage/max"}
        assert not missing and not extra, f"events --stats {top}: lacking {sorted(missing)}, extra {sorted(extra)}"
    for path in (("memory", "usage", "limit"), ("memory", "swap", "limit"), ("pids", "limit")):
        a, b = ours, theirs
        for k in path:
            a, b = a.get(k), b.get(k)
        assert a == b, f"events --stats {'/'.join(path)}: ours {a}, runc's {b}"
    assert set(ours["memory"]["raw"]) == set(theirs["memory"]["raw"]), "events --stats memory.raw keys"
    assert ours["cpu"]["throttling"].get("throttledPeriods", 0) > 0, "events --stats cpu throttling"
