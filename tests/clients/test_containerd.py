"""containerd (Debian's 1.6, its own config, root, state and socket) with `ctr` and the runc v2
shim, the shim's runtime options naming the binary (`--runc-binary`, BinaryName) and a root of
its own (`--runc-root`): the way containerd, and so Docker and Kubernetes, call a
runc-compatible runtime. Each scenario with ociruntime and with runc, the same outcome."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from tests.clients.conftest import Containerd, RuntimeUnderTest, Terminal, out, runtime_status, wait_for
from tests.conftest import host_cgroup_dirs


def new_id() -> str:
    return f"ctd-{uuid.uuid4().hex[:8]}"


def task_status(containerd: Containerd, cid: str) -> str:
    for line in out(containerd.ctr("task", "ls")).splitlines():
        fields = line.split()
        if fields[:1] == [cid]:
            return fields[-1]
    return "absent"


def run_detached(containerd: Containerd, rt: RuntimeUnderTest, rootfs: Path, cid: str, *args: str) -> None:
    res = containerd.ctr("run", "-d", *containerd.runtime_args(rt), "--rootfs", str(rootfs), cid, *args)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    assert task_status(containerd, cid) == "RUNNING"
    # The runtime under test made it: it knows the container under the shim's root.
    assert runtime_status(rt, containerd.runc_root(rt) / "default", cid) == "running"


def remove(containerd: Containerd, cid: str) -> None:
    containerd.ctr("task", "kill", "-s", "SIGKILL", cid)
    containerd.ctr("task", "rm", "-f", cid)
    containerd.ctr("container", "rm", cid)


def test_ctr_run_prints_and_propagates_the_exit_status(containerd: Containerd, runtime: RuntimeUnderTest,
                                                       base_rootfs: Path) -> None:
    cid = new_id()
    res = containerd.ctr("run", "--rm", *containerd.runtime_args(runtime), "--rootfs", str(base_rootfs),
                         cid, "/bin/sh", "-c", "echo hello from containerd; exit 3")
    assert res.stdout == b"hello from containerd\n", res.stderr
    assert res.returncode == 3
    assert host_cgroup_dirs(cid) == []
    assert containerd.ctr("container", "info", cid).returncode != 0  # --rm removed it


def test_detached_task_exec_kill_and_delete(containerd: Containerd, runtime: RuntimeUnderTest,
                                            base_rootfs: Path) -> None:
    cid = new_id()
    try:
        run_detached(containerd, runtime, base_rootfs, cid, "/bin/sleep", "1000")
        ex = containerd.ctr("task", "exec", "--exec-id", "e1", cid, "/bin/sh", "-c", "echo exec-ok; exit 4")
        assert (ex.returncode, out(ex)) == (4, "exec-ok\n"), ex.stderr
        assert containerd.ctr("task", "kill", "-s", "SIGKILL", cid).returncode == 0
        wait_for("the task to stop", lambda: task_status(containerd, cid) == "STOPPED")
        assert containerd.ctr("task", "rm", cid).returncode == 0
        assert task_status(containerd, cid) == "absent"
    finally:
        remove(containerd, cid)
    assert host_cgroup_dirs(cid) == []
    assert not any(cid in line for line in open("/proc/self/mountinfo"))


def test_task_exec_tty_with_resize(containerd: Containerd, runtime: RuntimeUnderTest,
                                   base_rootfs: Path) -> None:
    """`ctr task exec -t` on a real pty: the exec'd shell's terminal has our size, follows a
    resize, and its exit status comes back."""
    cid = new_id()
    term = None
    try:
        run_detached(containerd, runtime, base_rootfs, cid, "/bin/sleep", "1000")
        term = Terminal(containerd.ctr_cmd("task", "exec", "-t", "--exec-id", "tty1", cid, "/bin/sh"),
                        rows=27, cols=93)
        term.prompt()
        assert term.wait_size(27, 93) == (27, 93)
        term.send("tty\r")
        term.expect(r"/dev/pts/\d+")
        term.resize(50, 120)
        assert term.wait_size(50, 120) == (50, 120)
        term.send("exit 6\r")
        assert term.wait() == 6
    finally:
        if term is not None:
            term.close()
        remove(containerd, cid)


def test_task_metrics(containerd: Containerd, runtime: RuntimeUnderTest, base_rootfs: Path) -> None:
    cid = new_id()
    try:
        run_detached(containerd, runtime, base_rootfs, cid, "/bin/sh", "-c",
                     "sleep 1000 & sleep 1000 & wait")
        res = containerd.ctr("task", "metrics", cid)
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        text = out(res)
        assert cid in text, text
        m = re.search(r"^pids\.current\s+(\d+)\s*$", text, re.M)
        assert m and int(m.group(1)) == 3, text
        m = re.search(r"^memory\.usage(?:_in_bytes)?\s+(\d+)\s*$", text, re.M)
        assert m and int(m.group(1)) > 0, text
    finally:
        remove(containerd, cid)


def test_kill_of_a_stopped_task(containerd: Containerd, runtime: RuntimeUnderTest, base_rootfs: Path) -> None:
    """Killing a task whose process has exited is refused with containerd's "process already
    finished: not found" (the shim calls `<runtime> kill`, and maps runc's "container not
    running" to that), `kill --all` of it succeeds (runc signals the cgroup's processes, none),
    and the task can still be deleted with its exit status."""
    cid = new_id()
    try:
        res = containerd.ctr("run", "-d", *containerd.runtime_args(runtime), "--rootfs", str(base_rootfs),
                             cid, "/bin/sh", "-c", "exit 7")
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        wait_for("the task to stop", lambda: task_status(containerd, cid) == "STOPPED")
        kill = containerd.ctr("task", "kill", "-s", "SIGTERM", cid)
        err = kill.stderr.decode(errors="replace")
        assert kill.returncode == 1 and "process already finished" in err and "not found" in err, err
        kill = containerd.ctr("task", "kill", "-a", "-s", "SIGKILL", cid)
        assert kill.returncode == 0, kill.stderr.decode(errors="replace")
        assert task_status(containerd, cid) == "STOPPED"
        rm = containerd.ctr("task", "rm", cid)
        assert rm.returncode == 0, rm.stderr
        assert "exit with non-zero exit code 7" in rm.stderr.decode(), rm
    finally:
        remove(containerd, cid)
    assert host_cgroup_dirs(cid) == []
