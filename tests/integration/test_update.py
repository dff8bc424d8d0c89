"""`update`: every runc flag, and `-r -` with the JSON on a pipe (go-runc's way: docker update,
kubelet's resource changes). Values are read back from the container's cgroup files, for
ociruntime and runc on the same bundle (cgroup v1 host)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Runtime

FLAGS = ["--memory", "64m", "--memory-reservation", "32m", "--cpu-share", "512", "--cpu-period", "100000",
         "--cpu-quota", "50000", "--cpuset-cpus", "0", "--pids-limit", "50"]
FILES = {"memory": ["memory.limit_in_bytes", "memory.soft_limit_in_bytes"],
         "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"], "cpuset": ["cpuset.cpus"],
         "pids": ["pids.max"]}


def cgroup_values(pid: int, files: dict[str, list[str]]) -> dict[str, str]:
    paths = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(","):
            paths[c] = path
    return {f: (Path("/sys/fs/cgroup") / ctrl / paths[ctrl].lstrip("/") / f).read_text().strip()
            for ctrl, names in files.items() for f in names}


def running(rt: Runtime, bundle) -> tuple[str, int]:
    cid = rt.new_id()
    rt.run("run", "-d", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    return cid, rt.state(cid)["pid"]


def test_update_flags_reach_the_cgroup_like_runc(oci: Runtime, runc: Runtime, bundle) -> None:
    seen = {}
    for rt in (oci, runc):
        cid, pid = running(rt, bundle)
        rt.run("update", *FLAGS, cid, check=True)
        seen[rt.binary] = cgroup_values(pid, FILES)
    ours = seen[oci.binary]
    assert ours["memory.limit_in_bytes"] == str(64 << 20) and ours["pids.max"] == "50", ours
    assert ours["cpu.cfs_quota_us"] == "50000" and ours["cpu.shares"] == "512", ours
    assert ours == seen[runc.binary]


def test_update_resources_from_a_pipe(oci: Runtime, runc: Runtime, bundle) -> None:
    doc = b'{"memory": {"limit": 33554432}, "pids": {"limit": 20}, "cpu": {"shares": 256}}'
    seen = {}
    for rt in (oci, runc):
        cid, pid = running(rt, bundle)
        res = subprocess.run(rt.cmd("update", "-r", "-", cid), input=doc, capture_output=True, timeout=30)
        assert res.returncode == 0, res.stderr
        seen[rt.binary] = cgroup_values(pid, {"memory": ["memory.limit_in_bytes"], "pids": ["pids.max"],
                                              "cpu": ["cpu.shares"]})
    assert seen[oci.binary] == {"memory.limit_in_bytes": "33554432", "pids.max": "20", "cpu.shares": "256"}
    assert seen[oci.binary] == seen[runc.binary]


def test_update_newer_cpu_flags(oci: Runtime, bundle) -> None:
    """runc 1.2's --cpu-burst and --cpu-idle (runc 1.1.5 here has neither)."""
    cid, pid = running(oci, bundle)
    oci.run("update", "--cpu-period", "100000", "--cpu-quota", "50000", "--cpu-burst", "20000",
            "--cpu-idle", "1", cid, check=True)
    assert cgroup_values(pid, {"cpu": ["cpu.cfs_burst_us", "cpu.idle"]}) == {"cpu.cfs_burst_us": "20000",
                                                                             "cpu.idle": "1"}


def test_kernel_memory_is_warned_and_ignored(oci: Runtime, bundle) -> None:
    cid, _ = running(oci, bundle)
    res = oci.run("update", "--kernel-memory", "64m", "--pids-limit", "30", cid)
    assert res.returncode == 0 and b"kernel memory" in res.stderr, res.stderr


@pytest.mark.parametrize("flag", ["--l3-cache-schema", "--mem-bw-schema"])
def test_rdt_flags_are_refused_without_resctrl(oci: Runtime, bundle, flag: str) -> None:
    cid, _ = running(oci, bundle)
    res = oci.run("update", flag, "L3:0=ff", cid)
    assert res.returncode == 1 and b"Intel RDT is not available" in res.stderr, res.stderr


def test_bad_resources_on_a_pipe_are_one_clear_error(oci: Runtime, bundle) -> None:
    cid, _ = running(oci, bundle)
    res = subprocess.run(oci.cmd("update", "-r", "-", cid), input=b'{"memory": {"limit": "lots"}}',
                         capture_output=True, timeout=30)
    assert res.returncode == 1 and b"memory.limit" in res.stderr and b"Traceback" not in res.stderr, res.stderr


def test_events_stats_use_runcs_key_names(oci: Runtime, runc: Runtime, bundle) -> None:
    """docker stats and ctr task metrics read runc's names (memory.swap, kernel, kernelTCP, raw)."""
    import json

    def keys(doc: object, prefix: str = "") -> set[str]:
        if not isinstance(doc, dict):
            return set()
        return {f"{prefix}/{k}" for k in doc} | {x for k, v in doc.items() if k != "raw"
                                                 for x in keys(v, f"{prefix}/{k}")}
    seen = []
    for rt in (oci, runc):
        cid, _ = running(rt, bundle)
        seen.append(keys(json.loads(rt.run("events", "--stats", cid, check=True).stdout)))
    ours, theirs = seen
    assert {"/data/memory/swap", "/data/memory/kernel", "/data/memory/kernelTCP", "/data/memory/raw",
            "/data/cpu/usage/total", "/data/pids/current"} <= ours
    # Everything runc prints is there, but its per-cpu user/kernel split and the cpuset section.
    missing = {k for k in theirs - ours if not k.startswith(("/data/cpuset", "/data/cpu/usage/percpu_"))}
    assert missing == set(), missing
