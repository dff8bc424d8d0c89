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

HYBRID = "9:name=systemd:/\n8:pids:/user.slice\n4:memory:/a/b\n1:cpu,cpuacct:/\n0::/\n"


def test_the_pids_cgroup_of_a_v1_host_is_where_the_runtime_moves_itself() -> None:
    assert warmup.own_pids_cgroup_procs(HYBRID) == "/sys/fs/cgroup/pids/user.slice/cgroup.procs"
    assert warmup.own_pids_cgroup_procs("3:pids:/\n") == "/sys/fs/cgroup/pids/cgroup.procs"
    assert warmup.own_pids_cgroup_procs("5:cpu,pids:/x/\n") == "/sys/fs/cgroup/pids/x/cgroup.procs"


def test_no_thread_on_a_cgroup_v2_host() -> None:
    assert warmup.own_pids_cgroup_procs("0::/user.slice/session-1.scope\n") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="a move needs root")
def test_the_move_leaves_the_runtime_in_every_cgroup_it_was_in() -> None:
    """Run in a child interpreter, so that the test process itself is never moved."""
    probe = ("import sys\n"
             f"sys.path.insert(0, {str(Path(warmup.__file__).parents[3])!r})\n"
             "from ociruntime.linux.cgroups import warmup\n"
             "before = open('/proc/self/cgroup').read()\n"
             "procs = warmup.own_pids_cgroup_procs(before)\n"
             "if procs:\n"
             "    warmup.move_to_where_we_are(procs)\n"
             "import json\n"
             "print(json.dumps([procs, before, open('/proc/self/cgroup').read()]))\n")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True)
    procs, before, after = json.loads(out.stdout)
    assert after == before
    v1_host = any(line.split(":")[1] for line in before.splitlines())
    assert (procs is not None) == v1_host
