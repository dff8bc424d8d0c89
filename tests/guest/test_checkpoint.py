"""checkpoint and restore with Debian's criu (3.17), in the guest (issue 16).

The host's kernel is too new for Debian's criu (it cannot parse the vDSO: `criu check` fails in
kernel feature detection), so these run in the cgroup v2 + systemd guest only. The container
counts in memory and appends each number to /log in its rootfs: a restored process goes on
from the number it had when it was dumped, so the file reads 1, 2, 3, ... without a gap or a
restart, and the number after restore is one more than the last one before the dump."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error, host_cgroup_dirs, leaks

COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i >> /log; sleep 0.1; done"]
CRIU_TIMEOUT = 120  # criu under TCG takes seconds; a hang must still end the test


def counter_bundle(bundle) -> Path:
    def writable(cfg: dict) -> None:
        cfg["root"]["readonly"] = False

    return bundle(COUNTER, edit=writable)


def numbers(rootfs: Path) -> list[int]:
    text = (rootfs / "log").read_text() if (rootfs / "log").exists() else ""
    return [int(x) for x in text.split()]


def wait_numbers(rootfs: Path, at_least: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        seen = numbers(rootfs)
        if len(seen) >= at_least or time.monotonic() > deadline:
            assert len(seen) >= at_least, f"the counter stalled at {seen[-5:]}"
            return seen


def assert_counted_on(seen: list[int]) -> None:
    """1..n with nothing missing, repeated or restarted."""
    assert seen == list(range(1, len(seen) + 1)), f"not a continuous count: {seen}"


def stays_still(rootfs: Path, seconds: float = 1.0) -> list[int]:
    before = numbers(rootfs)
    time.sleep(seconds)
    after = numbers(rootfs)
    assert after == before, "the container kept counting after a full checkpoint"
    return after


_PIPES: list[int] = []  # read ends of the containers' stdout/stderr, closed at the end


@pytest.fixture(autouse=True)
def _close_pipes():
    yield
    while _PIPES:
        os.close(_PIPES.pop())


def with_pipes(rt: Runtime, *args: str) -> None:
    """Run a runtime command whose container keeps its stdio: /dev/null and a pipe, as engines
    give (conmon, containerd's shim). A file of the host's mount namespace as stdio is out of
    criu's reach; a pipe is handed over by restore (descriptors.json)."""
    r, w = os.pipe()
    _PIPES.append(r)
    try:
        res = subprocess.run(rt.cmd(*args), stdin=subprocess.DEVNULL, stdout=w, stderr=w,
                             timeout=CRIU_TIMEOUT)
    finally:
        os.close(w)
    if res.returncode != 0:
        os.set_blocking(r, False)
        try:
            out = os.read(r, 65536).decode(errors="replace")
        except BlockingIOError:
            out = ""
        raise AssertionError(f"{args} failed ({res.returncode}): {out}")


def run_counter(rt: Runtime, b: Path, cid: str) -> int:
    with_pipes(rt, "run", "-d", "-b", str(b), cid)
    wait_numbers(b / "rootfs", 5)
    return rt.state(cid)["pid"]


def checkpoint(rt: Runtime, cid: str, images: Path, *flags: str) -> None:
    rt.run("checkpoint", "--image-path", str(images), *flags, cid, check=True, timeout=CRIU_TIMEOUT)


def restore(rt: Runtime, cid: str, b: Path, images: Path, *flags: str) -> int:
    with_pipes(rt, "restore", "-d", "-b", str(b), "--image-path", str(images), *flags, cid)
    st = rt.state(cid)
    assert st["status"] == "running", st
    return st["pid"]


def cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text().strip().split("::", 1)[1]


@pytest.fixture(scope="module", autouse=True)
def criu_works() -> None:
    """Fail loudly, with criu's own words, if criu itself cannot run here."""
    res = subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"criu check: {res.stdout}{res.stderr}"


def test_checkpoint_restore_continues(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = counter_bundle(bundle)
    cid = oci.new_id("cr")
    run_counter(oci, b, cid)
    images = tmp_path / "images"
    checkpoint(oci, cid, images)
    assert oci.status(cid) == "absent", "a full checkpoint deletes the container (as runc)"
    assert host_cgroup_dirs(cid) == []
    assert json.loads((images / "descriptors.json").read_text())[0]  # stdio recorded
    before = stays_still(b / "rootfs")

    pid = restore(oci, cid, b, images)
    after = wait_numbers(b / "rootfs", len(before) + 5)
    assert_counted_on(after)  # went on from where it was: no restart from 1, nothing lost
    assert cgroup_of(pid).endswith("/" + cid), "the restored init is not in the container's cgroup"

    # A normal container: exec, ps, kill and delete work on it.
    res = oci.run("exec", cid, "cat", "/proc/1/cmdline", check=True)
    assert b"while true" in res.stdout
    assert pid in json.loads(oci.run("ps", "-f", "json", cid, check=True).stdout)
    oci.run("kill", cid, "KILL", check=True)
    assert oci.wait_status(cid, "stopped") == "stopped"
    oci.run("delete", cid, check=True)
    assert leaks(oci.root, cid, b) == []


def test_leave_running_then_restore_under_another_id(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = counter_bundle(bundle)
    cid = oci.new_id("cr")
    pid = run_counter(oci, b, cid)
    oci.run("pause", cid, check=True)  # so the count at the dump is known
    images = tmp_path / "images"
    checkpoint(oci, cid, images, "--leave-running")
    at_dump = numbers(b / "rootfs")[-1]
    st = oci.state(cid)
    assert (st["status"], st["pid"]) == ("paused", pid), "--leave-running must leave it as it was"
    oci.run("resume", cid, check=True)
    wait_numbers(b / "rootfs", at_dump + 3)  # the original goes on
    oci.run("delete", "-f", cid, check=True)
    written = len(stays_still(b / "rootfs", 0.5))

    other = oci.new_id("cr2")
    pid2 = restore(oci, other, b, images)
    seen = wait_numbers(b / "rootfs", written + 3)
    assert seen[written:written + 3] == [at_dump + 1, at_dump + 2, at_dump + 3], \
        "the restored copy must go on from the number it had at the dump"
    assert oci.status(cid) == "absent"
    assert cgroup_of(pid2).endswith("/" + other)
    oci.run("delete", "-f", other, check=True)
    assert leaks(oci.root, other, b) == []


def test_pre_dump_then_dump(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = counter_bundle(bundle)
    cid = oci.new_id("cr")
    pid = run_counter(oci, b, cid)
    pre = tmp_path / "pre"
    checkpoint(oci, cid, pre, "--pre-dump")
    assert oci.state(cid)["pid"] == pid, "a pre-dump leaves the container running"
    wait_numbers(b / "rootfs", len(numbers(b / "rootfs")) + 3)
    final = tmp_path / "final"
    checkpoint(oci, cid, final, "--parent-path", "../pre")
    assert os.path.realpath(final / "parent") == str(pre), "criu did not link the parent images"
    before = stays_still(b / "rootfs")
    restore(oci, cid, b, final)
    assert_counted_on(wait_numbers(b / "rootfs", len(before) + 3))
    oci.run("delete", "-f", cid, check=True)


def test_corrupt_images_fail_cleanly(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = counter_bundle(bundle)
    cid = oci.new_id("cr")
    run_counter(oci, b, cid)
    images = tmp_path / "images"
    checkpoint(oci, cid, images)
    for img in images.glob("pages-*.img"):
        img.write_bytes(b"\0" * 10)  # memory pages cut short
    for img in images.glob("core-*.img"):
        img.write_bytes(b"garbage")
    res = oci.run("restore", "-d", "-b", str(b), "--image-path", str(images), cid, timeout=CRIU_TIMEOUT)
    line = assert_clean_error(res, "criu restore failed", "restore.log")
    assert "Error" in line
    assert leaks(oci.root, cid, b) == []
    assert host_cgroup_dirs(cid) == []


def test_restore_foreground_waits_and_deletes(oci: Runtime, bundle, tmp_path: Path) -> None:
    """Without --detach, restore waits for the container like `run`, with its exit status,
    and deletes it afterwards."""
    b = counter_bundle(bundle)
    cid = oci.new_id("cr")
    run_counter(oci, b, cid)
    images = tmp_path / "images"
    checkpoint(oci, cid, images)
    proc = subprocess.Popen(oci.cmd("restore", "-b", str(b), "--image-path", str(images), cid),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert oci.wait_status(cid, "running", timeout=CRIU_TIMEOUT) == "running"
        oci.run("kill", cid, "KILL", check=True)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 137, err
    finally:
        proc.kill()
        proc.wait()
    assert oci.status(cid) == "absent"
    assert leaks(oci.root, cid, b) == []


# --- podman, with ociruntime and with runc ---------------------------------------------------
@pytest.mark.parametrize("runtime", ["/usr/local/bin/ociruntime", shutil.which("runc") or "/usr/sbin/runc"])
def test_podman_checkpoint_restore(runtime: str, base_rootfs: Path, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    shutil.copytree(base_rootfs, rootfs, symlinks=True)
    name = f"ck-{os.path.basename(runtime)}-{os.getpid()}"
    podman = ["podman", "--runtime", runtime]

    def pm(*args: str, timeout: float = CRIU_TIMEOUT) -> str:
        res = subprocess.run([*podman, *args], capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, f"podman {' '.join(args)}: {res.stderr}"
        return res.stdout

    try:
        pm("run", "-d", "--name", name, "--network", "none", "--rootfs", str(rootfs), *COUNTER)
        wait_numbers(rootfs, 5)
        pm("container", "checkpoint", name)
        assert pm("inspect", "-f", "{{.State.Status}}", name).strip() == "exited"
        before = stays_still(rootfs)
        pm("container", "restore", name)
        assert pm("inspect", "-f", "{{.State.Status}}", name).strip() == "running"
        assert_counted_on(wait_numbers(rootfs, len(before) + 3))
        assert "while true" in pm("exec", name, "cat", "/proc/1/cmdline")
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "0", name], capture_output=True, timeout=60)
