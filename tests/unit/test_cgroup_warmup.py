"""linux/cgroups/warmup.py: on a v1 host, create and exec pay the cgroup lock's grace period on a
thread, by moving the runtime to the cgroup it is already in. That move must change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ociruntime.linux.cgroups import warmup
from ociruntime.linux.cgroups.layout import parse_mountinfo, parse_self_cgroup

# The pids hierarchy at /sys/fs/cgroup/pids; on the second host only a subtree of it (mount root
# /ctr), as in a container given its own part of the host's tree.
PIDS = "40 31 0:35 {root} /sys/fs/cgroup/pids rw,relatime shared:9 - cgroup cgroup rw,pids\n"
V2 = "30 24 0:26 / /sys/fs/cgroup rw,relatime shared:4 - cgroup2 cgroup2 rw\n"


def _procs(mountinfo: str, self_cgroup: str) -> str | None:
    return warmup.own_cgroup_procs(parse_mountinfo(mountinfo), parse_self_cgroup(self_cgroup))


def test_the_runtime_moves_itself_to_the_pids_cgroup_it_is_in() -> None:
    assert _procs(PIDS.format(root="/"), "8:pids:/user.slice\n0::/\n") == \
        "/sys/fs/cgroup/pids/user.slice/cgroup.procs"
    assert _procs(PIDS.format(root="/"), "8:pids:/\n") == "/sys/fs/cgroup/pids/cgroup.procs"
    # Under a mount root, the path the kernel gives is relative to the namespace's root:
    # the part above the mount root is not in the mount (the drivers' own rule, hierarchy_dir).
    assert _procs(PIDS.format(root="/ctr"), "8:pids:/ctr/sub\n") == "/sys/fs/cgroup/pids/sub/cgroup.procs"


def test_no_thread_on_a_cgroup_v2_host() -> None:
    assert _procs(V2, "0::/user.slice/session-1.scope\n") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="a move needs root")
def test_the_move_leaves_the_runtime_in_every_cgroup_it_was_in() -> None:
    """Run in a child interpreter, so that the test process itself is never moved."""
    probe = ("import sys\n"
             f"sys.path.insert(0, {str(Path(warmup.__file__).parents[3])!r})\n"
             "from ociruntime.linux.cgroups import warmup\n"
             "before = open('/proc/self/cgroup').read()\n"
             "from ociruntime.linux.cgroups.layout import parse_self_cgroup, read_layout\n"
             "procs = warmup.own_cgroup_procs(read_layout(), parse_self_cgroup(before))\n"
             "if procs:\n"
             "    warmup.move_to_where_we_are(procs)\n"
             "import json\n"
             "print(json.dumps([procs, before, open('/proc/self/cgroup').read()]))\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True)
    procs, before, after = json.loads(out.stdout)
    assert after == before
    v1_host = any(line.split(":")[1] for line in before.splitlines())
    assert (procs is not None) == v1_host
