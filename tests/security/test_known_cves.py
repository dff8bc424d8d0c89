"""Regression tests for the classes of runc's past CVEs: container code must never reach the
host through the runtime (symlinked mount targets, leaked fds, the setup processes' /proc)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.conftest import Runtime, host_mounts_mentioning

pytestmark = pytest.mark.cgroupv2


def test_symlinked_mount_target_stays_inside_the_rootfs(oci: Runtime, bundle, tmp_path: Path) -> None:
    """CVE-2021-30465 class: a symlink in the image pointing at a host path must resolve inside
    the rootfs, never mount over the host directory it names."""
    host_dir = tmp_path / f"host-{uuid.uuid4().hex[:6]}"
    host_dir.mkdir()
    (host_dir / "precious").write_text("host data")

    def add_mount(cfg: dict) -> None:
        cfg["mounts"].append({"destination": "/data", "type": "tmpfs", "source": "tmpfs"})
        cfg["root"]["readonly"] = False

    b = bundle(["sh", "-c", "echo inside > /data/x; ls /data"], edit=add_mount)
    (b / "rootfs" / "data").symlink_to(host_dir)  # absolute: /tmp/.../host-XXXX
    res = oci.run("run", "-b", str(b), oci.new_id(), check=True)
    assert res.stdout.split() == [b"x"]
    assert sorted(p.name for p in host_dir.iterdir()) == ["precious"]
    assert host_mounts_mentioning(str(host_dir)) == []
    # The target was created inside the rootfs, where the symlink points when / is the rootfs.
    assert (b / "rootfs" / str(host_dir).lstrip("/")).is_dir()


def test_container_process_gets_only_stdio_fds(oci: Runtime, bundle) -> None:
    """CVE-2024-21626 class: no runtime fd (state dir, host directories, sockets) leaks in."""
    res = oci.run("run", "-b", str(bundle(["sh", "-c", "ls /proc/self/fd; readlink /proc/self/cwd"])),
                  oci.new_id(), check=True)
    fds = res.stdout.decode().split()
    # 0-2, plus the fd `ls` itself opened on /proc/self/fd; the cwd is the container's /.
    assert fds[:-1] == ["0", "1", "2", "3"] and fds[-1] == "/"


def test_exec_process_gets_only_stdio_fds(oci: Runtime, bundle) -> None:
    cid = oci.new_id()
    oci.run("run", "-d", "-b", str(bundle(["sleep", "100"])), cid, check=True)
    res = oci.run("exec", cid, "ls", "/proc/self/fd", check=True)
    assert res.stdout.decode().split() == ["0", "1", "2", "3"]


def test_waiting_init_cannot_be_inspected_from_inside(oci: Runtime, bundle) -> None:
    """CVE-2019-5736 class: the runtime's processes are non-dumpable until execve, so container
    code cannot open their /proc/<pid>/exe (the runtime's binary) or read their memory/environ."""
    cid = oci.new_id()
    oci.run("create", "-b", str(bundle(["true"])), cid, check=True)
    assert oci.state(cid)["status"] == "created"  # the init is there, waiting for start
    res = oci.run("exec", cid, "sh", "-c",
                  "cat /proc/1/environ >/dev/null 2>&1 && echo environ-readable; "
                  "cat /proc/1/exe >/dev/null 2>&1 && echo exe-readable; "
                  "cat /proc/1/mem >/dev/null 2>&1 && echo mem-readable; echo done")
    assert res.stdout.decode().split() == ["done"], res.stdout


def test_runtime_binary_is_not_reachable_through_proc_self_exe(oci: Runtime, bundle) -> None:
    """After execve, /proc/self/exe is the container's own program, never the runtime's."""
    res = oci.run("run", "-b", str(bundle(["readlink", "/proc/self/exe"])), oci.new_id(), check=True)
    assert res.stdout.decode().strip() == "/bin/busybox"
    assert os.path.realpath("/usr/local/bin/ociruntime") not in res.stdout.decode()
