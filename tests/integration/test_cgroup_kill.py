"""`delete --force` kills everything in the container's cgroup, not only what its pid namespace
takes down: without a pid namespace a process the container forked off (own session, re-parented
to the host) outlives the init. Through cgroup.kill where the kernel has it (the v2 cgroup, or on
a hybrid v1 host the container's cgroup in the unified hierarchy), one signalling of the whole
cgroup that no fork can slip past. The same with runc; host (v1) and guest (v2)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime, host_cgroup_dirs

pytestmark = pytest.mark.cgroupv2

FORK_OFF = "setsid sh -c 'sleep 1000 & echo $! > /dev/shm/orphan; wait' & exec sleep 1000"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("which", ["oci", "runc"])
def test_delete_force_kills_a_forked_off_process(request, bundle, which: str) -> None:
    rt: Runtime = request.getfixturevalue(which)

    def host_pidns(cfg: dict) -> None:
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "pid"]
        cfg["process"]["args"] = ["sh", "-c", FORK_OFF]
    cid = rt.new_id("kill")
    rt.run("run", "-d", "-b", str(bundle(edit=host_pidns)), cid, check=True)
    init = rt.state(cid)["pid"]
    note = Path(f"/proc/{init}/root/dev/shm/orphan")
    deadline = time.monotonic() + 20
    while not (note.exists() and note.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    orphan = int(note.read_text())
    assert alive(orphan)
    rt.run("delete", "--force", cid, check=True)
    deadline = time.monotonic() + 5
    while alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(orphan), f"{which}: delete --force left the container's forked-off process {orphan}"
    assert not alive(init)
    left = host_cgroup_dirs(cid)
    if which == "runc":
        for path in left:  # runc 1.1.5 leaves it on cgroup v2 (seen in the guest): not ours to judge
            with contextlib.suppress(OSError):
                Path(path).rmdir()
    else:
        assert left == [], "delete --force left the cgroup"


def _unified_root() -> Path:
    for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (root / "cgroup.procs").exists() and (root / "cgroup.subtree_control").exists():
            return root
    pytest.fail("no cgroup2 hierarchy mounted (hybrid hosts have one at /sys/fs/cgroup/unified)")


def test_waits_on_a_cgroup_removed_meanwhile() -> None:
    """systemd removes an emptied scope by itself, racing with delete's cgroup.kill: a wait for
    the cgroup to empty ends when it is gone (seen: podman checkpoint failed with a bare
    "No such device" when the read of cgroup.events lost that race); any other wait fails with
    a cgroup error naming the file, never a bare OSError."""
    from ociruntime.linux.cgroups import CgroupError
    from ociruntime.linux.cgroups.fs import kill_cgroup, wait_event

    path = _unified_root() / f"ociruntime-gone-{time.monotonic_ns()}"
    path.mkdir()
    try:
        fd = os.open(path / "cgroup.events", os.O_RDONLY)
    finally:
        path.rmdir()
    try:
        with pytest.raises(OSError) as gone:
            os.read(fd, 100)  # what wait_event meets when it loses the race
    finally:
        os.close(fd)
    assert gone.value.errno == errno.ENODEV
    wait_event(str(path), "populated", 0, timeout=1.0)
    assert kill_cgroup(str(path)) is False  # gone: the caller's pid walk finds nothing
    path.mkdir()
    threading.Timer(0.2, path.rmdir).start()
    with pytest.raises(CgroupError, match=f"{path}/cgroup.events.*frozen 1"):
        wait_event(str(path), "frozen", 1, timeout=1.0)
