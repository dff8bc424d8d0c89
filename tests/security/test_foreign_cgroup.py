"""Issue 9 item 8: a container whose cgroupsPath names an existing cgroup that holds someone
else's process. delete -f (and the undo of a failed create) must kill only the container's
processes and remove only the cgroups the container created."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error

CGROUP_ROOT = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """Mount points of every v1 hierarchy (and the unified one, on a hybrid host)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        head, _, tail = line.partition(" - ")
        fstype = tail.split(" ", 1)[0]
        point = Path(head.split(" ")[4])
        if fstype in ("cgroup", "cgroup2") and CGROUP_ROOT in (point, *point.parents):
            points.append(point)
    return points


@pytest.fixture
def foreign_cgroup() -> Iterator[tuple[str, subprocess.Popen, list[Path]]]:
    """/foreign-<uuid> in every hierarchy, holding a `sleep` started here."""
    name = f"foreign-{uuid.uuid4().hex[:10]}"
    dirs = [point / name for point in hierarchies()]
    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        for d in dirs:
            d.mkdir()
            if (d / "cpuset.cpus").exists():  # an empty cpuset accepts no process
                for f in ("cpuset.cpus", "cpuset.mems"):
                    (d / f).write_text((d.parent / f).read_text())
            (d / "cgroup.procs").write_text(str(sleeper.pid))
        yield f"/{name}", sleeper, dirs
    finally:
        sleeper.kill()
        sleeper.wait()
        # A failed test may leave the container's processes in our cgroup: they go with it.
        for d in dirs:
            for pid in (d / "cgroup.procs").read_text().split() if d.is_dir() else ():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for d in dirs:
            deadline = time.monotonic() + 5
            while d.exists():
                try:
                    d.rmdir()
                except OSError:
                    assert time.monotonic() < deadline, f"{d} cannot be removed"
                    time.sleep(0.02)


def assert_untouched(sleeper: subprocess.Popen, dirs: list[Path]) -> None:
    assert sleeper.poll() is None, "the runtime killed a process that is not the container's"
    missing = [str(d) for d in dirs if not d.is_dir()]
    assert not missing, f"the runtime removed cgroups it did not create: {missing}"
    for d in dirs:
        assert str(sleeper.pid) in (d / "cgroup.procs").read_text().split(), d


def in_cgroup(bundle, path: str, args: list[str], hooks: dict | None = None) -> Path:
    def edit(c: dict) -> None:
        c["linux"]["cgroupsPath"] = path
        if hooks:
            c["hooks"] = hooks
    return bundle(args=args, edit=edit)


def test_delete_force_spares_foreign_process_and_cgroup(oci: Runtime, bundle, foreign_cgroup) -> None:
    path, sleeper, dirs = foreign_cgroup
    b = in_cgroup(bundle, path, ["sh", "-c", "sleep 1000 & sleep 1000"])
    cid = oci.new_id("fc")
    res = oci.run("run", "-d", "-b", str(b), cid)
    assert res.returncode == 0, res.stderr
    assert b"already holds 1 process" in res.stderr, "joining a non-empty cgroup is warned about"
    init = oci.state(cid)["pid"]
    exec_res = oci.run("exec", "-d", cid, "sleep", "999")
    assert exec_res.returncode == 0, exec_res.stderr
    container = [p for p in map(int, (dirs[0] / "cgroup.procs").read_text().split()) if p != sleeper.pid]
    assert len(container) >= 3 and init in container  # init, its child, the exec'd process
    # kill -a too signals only the container's processes.
    assert oci.run("kill", "-a", cid, "KILL").returncode == 0
    assert oci.wait_status(cid, "stopped") == "stopped"
    assert_untouched(sleeper, dirs)
    oci.run("delete", "-f", cid, check=True)
    assert_untouched(sleeper, dirs)
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{p}").exists() and b"Z" not in Path(f"/proc/{p}/stat").read_bytes().split(b")")[-1][:3]
              for p in container):
        assert time.monotonic() < deadline, "the container's own processes survived delete -f"
        time.sleep(0.02)


def test_delete_force_of_a_running_container_spares_them(oci: Runtime, bundle, foreign_cgroup) -> None:
    path, sleeper, dirs = foreign_cgroup
    b = in_cgroup(bundle, path, ["sleep", "1000"])
    cid = oci.new_id("fc")
    oci.run("run", "-d", "-b", str(b), cid, check=True)
    oci.run("delete", "-f", cid, check=True)
    assert_untouched(sleeper, dirs)
    assert not (oci.root / cid).exists()


def test_failed_create_spares_foreign_process_and_cgroup(oci: Runtime, bundle, foreign_cgroup) -> None:
    path, sleeper, dirs = foreign_cgroup
    b = in_cgroup(bundle, path, ["sleep", "1000"],
                  hooks={"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]})
    cid = oci.new_id("fc")
    res = oci.run("create", "-b", str(b), cid)
    assert_untouched(sleeper, dirs)
    assert not (oci.root / cid).exists()
    lines = [ln for ln in res.stderr.decode().splitlines() if "level=warning" not in ln]
    assert_clean_error(subprocess.CompletedProcess(res.args, res.returncode, b"",
                                                   "\n".join(lines).encode()), "createRuntime")
    # The container's init is gone from the cgroup (it may take a moment to finish exiting).
    deadline = time.monotonic() + 5
    while [int(p) for p in (dirs[0] / "cgroup.procs").read_text().split()] != [sleeper.pid]:
        assert time.monotonic() < deadline, (dirs[0] / "cgroup.procs").read_text()
        time.sleep(0.02)


def test_without_a_pid_namespace_only_the_init_and_exec_processes_die(oci: Runtime, bundle,
                                                                      foreign_cgroup) -> None:
    """Sharing the host's pid namespace, the container's processes cannot be told apart by
    namespace: the init (pidfd) and what entered through exec (recorded) are killed, no more."""
    path, sleeper, dirs = foreign_cgroup

    def edit(c: dict) -> None:
        c["linux"]["cgroupsPath"] = path
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
    cid = oci.new_id("fc")
    oci.run("run", "-d", "-b", str(bundle(args=["sleep", "1000"], edit=edit)), cid, check=True)
    init = oci.state(cid)["pid"]
    pid_file = oci.root.parent / "exec.pid"
    oci.run("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "999", check=True)
    exec_pid = int(pid_file.read_text())
    oci.run("delete", "-f", cid, check=True)
    assert_untouched(sleeper, dirs)
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{p}").exists() and b") Z" not in Path(f"/proc/{p}/stat").read_bytes()
              for p in (init, exec_pid)):
        assert time.monotonic() < deadline, "the container's own processes survived delete -f"
        time.sleep(0.02)
