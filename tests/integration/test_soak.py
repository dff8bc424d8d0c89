"""Soak (issue 18 point 6): 1000 create/start/wait/delete lifecycles and 1000 `exec` calls must
leave the caller's fds, the fds a container process inherits, host mounts, cgroup directories,
state entries and zombies where they were. Marked slow (about two minutes)."""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime

LIFECYCLES = 1000
EXECS = 1000


def cgroup_dirs() -> int:
    return sum(len(dirs) for _, dirs, _ in os.walk("/sys/fs/cgroup"))


def zombies_of(parents: set[int]) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) in parents:
            count += 1
    return count


def snapshot(oci: Runtime, probe: str, init: int) -> dict[str, int]:
    inherited = oci.run("exec", probe, "ls", "/proc/self/fd", check=True).stdout.split()
    return {
        "caller fds": len(os.listdir("/proc/self/fd")),
        "fds an exec'd process gets": len(inherited),
        "probe init fds": len(os.listdir(f"/proc/{init}/fd")),
        "host mounts": len(Path("/proc/self/mountinfo").read_text().splitlines()),
        "cgroup dirs": cgroup_dirs(),
        "state entries": len(os.listdir(oci.root)),
        "zombies (ours, the probe's)": zombies_of({os.getpid(), init}),
    }


def wait_exit(pid: int) -> None:
    fd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(10_000), f"pid {pid} did not exit"
    finally:
        os.close(fd)


@pytest.mark.soak
def test_soak_lifecycles_and_execs_leave_nothing_growing(oci: Runtime, bundle) -> None:
    probe = oci.new_id("probe")
    oci.run("run", "-d", "-b", str(bundle(["sleep", "100000"])), probe, check=True)
    init = oci.state(probe)["pid"]
    b = bundle(["true"])
    first = snapshot(oci, probe, init)
    rows = [("start", first)]
    cid = oci.new_id("soak")
    started = time.monotonic()
    for i in range(1, LIFECYCLES + 1):
        oci.run("create", "-b", str(b), cid, check=True)
        pid = json.loads(oci.run("state", cid, check=True).stdout)["pid"]
        oci.run("start", cid, check=True)
        wait_exit(pid)
        oci.run("delete", cid, check=True)
        if i % 250 == 0:
            rows.append((f"after {i} lifecycles", snapshot(oci, probe, init)))
    lifecycle_s = time.monotonic() - started
    started = time.monotonic()
    for i in range(1, EXECS + 1):
        oci.run("exec", probe, "true", check=True)
        if i % 250 == 0:
            rows.append((f"after {i} execs", snapshot(oci, probe, init)))
    exec_s = time.monotonic() - started
    keys = list(first)
    print(f"\nSOAK {LIFECYCLES} lifecycles in {lifecycle_s:.1f} s, {EXECS} execs in {exec_s:.1f} s")
    print("SOAK " + " | ".join(["when", *keys]))
    for label, snap in rows:
        print("SOAK " + " | ".join([label, *(str(snap[k]) for k in keys)]))
    last = rows[-1][1]
    # The exec probe itself is one more exec each time: it must see the same fds every time.
    assert last == first, f"something grew: {first} -> {last}"
