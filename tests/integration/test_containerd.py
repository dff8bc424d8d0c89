"""containerd (Debian's, with its runc shim) driving ociruntime through `--runc-binary`: the way
containerd, and so Docker and Kubernetes, call a runc-compatible runtime."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import OCIRUNTIME, host_cgroup_dirs


class Containerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "--address", str(self.sock), *args], capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.fail("containerd is not installed: scripts/install.sh installs it")
    base = Path(f"/tmp/ociruntime-ctd-{uuid.uuid4().hex[:8]}")  # a short path: unix socket limit
    base.mkdir()
    (base / "config.toml").write_text(
        f'version = 2\nroot = "{base}/root"\nstate = "{base}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{base}/containerd.sock"\n')
    log = open(base / "log", "wb")
    daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")], stdout=log,
                              stderr=log, stdin=subprocess.DEVNULL)
    ctd = Containerd(base)
    try:
        for _ in range(100):
            if ctd.sock.exists() and ctd.ctr("version").returncode == 0:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"containerd did not start: {(base / 'log').read_text()[-2000:]}")
        yield ctd
    finally:
        daemon.terminate()
        daemon.wait(20)
        log.close()
        subprocess.run(["umount", "-R", "-l", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def run_args(rootfs: Path, cid: str) -> list[str]:
    return ["run", "--rm", "--runc-binary", OCIRUNTIME, "--rootfs", str(rootfs), cid]


def test_ctr_run_prints_and_propagates_the_exit_status(containerd: Containerd, base_rootfs: Path) -> None:
    cid = f"ctd-{uuid.uuid4().hex[:8]}"
    res = containerd.ctr(*run_args(base_rootfs, cid), "/bin/sh", "-c", "echo hello from containerd; exit 3")
    assert res.stdout == b"hello from containerd\n", res.stderr
    assert res.returncode == 3
    assert host_cgroup_dirs(cid) == []


def test_detached_task_exec_kill_and_delete(containerd: Containerd, base_rootfs: Path) -> None:
    cid = f"ctd-{uuid.uuid4().hex[:8]}"
    res = containerd.ctr("run", "-d", "--runc-binary", OCIRUNTIME, "--rootfs", str(base_rootfs),
                         cid, "/bin/sleep", "1000")
    assert res.returncode == 0, res.stderr
    try:
        tasks = containerd.ctr("task", "ls").stdout.decode()
        assert any(line.split()[:1] == [cid] and "RUNNING" in line for line in tasks.splitlines()), tasks
        ex = containerd.ctr("task", "exec", "--exec-id", "e1", cid, "/bin/sh", "-c", "echo exec-ok; hostname")
        assert ex.returncode == 0 and ex.stdout.decode().split()[0] == "exec-ok", ex.stderr
        assert containerd.ctr("task", "kill", "-s", "SIGKILL", cid).returncode == 0
        for _ in range(100):
            if "STOPPED" in containerd.ctr("task", "ls").stdout.decode():
                break
            time.sleep(0.05)
        assert containerd.ctr("task", "rm", cid).returncode == 0
    finally:
        containerd.ctr("task", "rm", "-f", cid)
        containerd.ctr("container", "rm", cid)
    assert host_cgroup_dirs(cid) == []
    assert not any(cid in line for line in open("/proc/self/mountinfo"))
