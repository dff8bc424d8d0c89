"""pause / resume (the cgroup freezer) and ps (the container's processes), as runc's."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime

pytestmark = pytest.mark.cgroupv2


def proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def frozen_by_the_kernel(pid: int) -> bool:
    """The container's cgroup as the kernel reports it: cgroup v2's cgroup.events "frozen 1"
    (cgroup.freeze), v1's freezer.state FROZEN."""
    paths = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    if "freezer" in paths:
        return Path(f"/sys/fs/cgroup/freezer{paths['freezer']}/freezer.state").read_text().strip() == "FROZEN"
    events = Path(f"/sys/fs/cgroup{paths['']}/cgroup.events").read_text().split()
    return events[events.index("frozen") + 1] == "1"


def ticking(oci: Runtime, bundle) -> str:
    cid = oci.new_id()
    b = bundle(["sh", "-c", "while :; do sleep 0.05; done"])
    oci.run("run", "-d", "-b", str(b), cid, check=True)
    return cid


def test_pause_freezes_and_resume_thaws(oci: Runtime, bundle) -> None:
    cid = ticking(oci, bundle)
    pid = oci.state(cid)["pid"]
    oci.run("pause", cid, check=True)
    assert oci.state(cid)["status"] == "paused"
    assert proc_state(pid) == "D" or proc_state(pid) == "S"  # frozen tasks sleep in the freezer
    res = oci.run("pause", cid)
    assert res.returncode == 1 and b"paused" in res.stderr
    oci.run("resume", cid, check=True)
    assert oci.state(cid)["status"] == "running"
    assert oci.run("resume", cid).returncode == 1


def test_a_paused_container_is_really_stopped(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    b = bundle(["sh", "-c", "while :; do echo x >> /dev/shm/n; sleep 0.01; done"])
    oci.run("run", "-d", "-b", str(b), cid, check=True)
    time.sleep(0.2)
    oci.run("pause", cid, check=True)
    pid = oci.state(cid)["pid"]
    assert frozen_by_the_kernel(pid)
    counter = Path(f"/proc/{pid}/root/dev/shm/n")  # appended to every 10 ms while running
    first = counter.stat().st_size
    time.sleep(0.3)
    assert counter.stat().st_size == first
    oci.run("resume", cid, check=True)
    assert not frozen_by_the_kernel(pid)
    time.sleep(0.3)
    assert counter.stat().st_size > first


def test_delete_force_of_a_paused_container(oci: Runtime, bundle) -> None:
    cid = ticking(oci, bundle)
    oci.run("pause", cid, check=True)
    start = time.monotonic()
    oci.run("delete", "-f", cid, check=True)
    assert time.monotonic() - start < 5
    assert oci.run("state", cid).returncode == 1


def test_ps_lists_the_containers_processes(oci: Runtime, bundle) -> None:
    cid = oci.new_id()  # no short-lived children here: two ps calls must see the same pids
    oci.run("run", "-d", "-b", str(bundle(["sleep", "1000"])), cid, check=True)
    pid = oci.state(cid)["pid"]
    oci.run("exec", "-d", cid, "sleep", "100", check=True)
    pids = json.loads(oci.run("ps", "-f", "json", cid, check=True).stdout)
    assert pid in pids and len(pids) >= 2
    table = oci.run("ps", cid, check=True).stdout.decode().splitlines()
    assert table[0].split()[:2] == ["UID", "PID"]
    assert {int(line.split()[1]) for line in table[1:]} <= set(pids)
    assert any("sleep 100" in line for line in table[1:])


def test_ps_of_a_stopped_or_missing_container_fails(oci: Runtime, bundle) -> None:
    assert oci.run("ps", "nope").returncode == 1
    cid = oci.new_id()
    oci.run("create", "-b", str(bundle(["true"])), cid, check=True)
    oci.run("start", cid, check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"
    assert oci.run("ps", cid).returncode == 1


def test_events_stats_and_update(oci: Runtime, bundle) -> None:
    cid = ticking(oci, bundle)
    event = json.loads(oci.run("events", "--stats", cid, check=True).stdout)
    assert event["type"] == "stats" and event["id"] == cid
    assert event["data"]["pids"]["current"] >= 1
    oci.run("update", "--memory", "64m", "--pids-limit", "50", cid, check=True)
    data = json.loads(oci.run("events", "--stats", cid, check=True).stdout)["data"]
    assert data["memory"]["usage"]["limit"] == 64 << 20
    assert data["pids"]["limit"] == 50
    res = oci.run("update", "--memory", "lots", cid)
    assert res.returncode == 1 and b"--memory" in res.stderr
