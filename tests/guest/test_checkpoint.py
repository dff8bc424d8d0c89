"""checkpoint and restore with Debian's criu (3.17), in the guest (issue 16).

The host's kernel is too new for Debian's criu (it cannot parse the vDSO: `criu check` fails in
kernel feature detection), so these run in the cgroup v2 + systemd guest only. The container
counts in memory and appends each number to /log in its rootfs: a restored process goes on
from the number it had when it was dumped, so the file reads 1, 2, 3, ... without a gap or a
restart, and the number after restore is one more than the last one before the dump."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
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


_PROCS: list[subprocess.Popen] = []  # criu servers a test started, killed at the end


@pytest.fixture(autouse=True)
def _close_pipes():
    yield
    while _PIPES:
        os.close(_PIPES.pop())
    while _PROCS:
        proc = _PROCS.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
        images = Path(args[args.index("--image-path") + 1]) if "--image-path" in args else None
        raise AssertionError(f"{args} failed ({res.returncode}): {out}\n{criu_errors(images) if images else ''}")


def run_counter(rt: Runtime, b: Path, cid: str) -> int:
    with_pipes(rt, "run", "-d", "-b", str(b), cid)
    wait_numbers(b / "rootfs", 5)
    return rt.state(cid)["pid"]


def criu_errors(directory: Path) -> str:
    """criu's error lines in its logs there: what a failed step's message leaves out."""
    lines = []
    for log in sorted(directory.glob("*.log")):
        lines += [f"{log.name}: {ln}" for ln in log.read_text(errors="replace").splitlines() if "Error" in ln]
    return "\n".join(lines[-30:])


def checkpoint(rt: Runtime, cid: str, images: Path, *flags: str) -> None:
    res = rt.run("checkpoint", "--image-path", str(images), *flags, cid, timeout=CRIU_TIMEOUT)
    assert res.returncode == 0, f"{res.stderr.decode()}\n{criu_errors(images)}"


def restore(rt: Runtime, cid: str, b: Path, images: Path, *flags: str) -> int:
    with_pipes(rt, "restore", "-d", "-b", str(b), "--image-path", str(images), *flags, cid)
    st = rt.state(cid)
    assert st["status"] == "running", st
    return st["pid"]


def lo_flags(rt: Runtime, cid: str) -> str:
    """The container's lo's flags as ip(8) shows them: <LOOPBACK> when down."""
    out = rt.run("exec", cid, "ip", "-o", "link", "show", "lo", check=True).stdout.decode()
    return out.split()[2]


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
    assert list(images.glob("netdev-*.img")), "criu dumped the container's network namespace"
    before = stays_still(b / "rootfs")

    # --no-pivot and --no-subreaper (with -d) are accepted and change nothing here.
    pidfile = tmp_path / "restored.pid"
    pages = sum(p.stat().st_blocks for p in images.glob("pages-*.img"))
    pid = restore(oci, cid, b, images, "--pid-file", str(pidfile), "--no-pivot", "--no-subreaper",
                  "--auto-dedup")
    assert pidfile.read_text() == str(pid), "--pid-file must hold the restored init's pid"
    # --auto-dedup on restore: what was restored is punched out of the images.
    assert sum(p.stat().st_blocks for p in images.glob("pages-*.img")) < pages
    after = wait_numbers(b / "rootfs", len(before) + 5)
    assert_counted_on(after)  # went on from where it was: no restart from 1, nothing lost
    assert cgroup_of(pid).endswith("/" + cid), "the restored init is not in the container's cgroup"

    assert "UP" in lo_flags(oci, cid), "the network namespace restored: lo is up"
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
    # ignore: criu leaves cgroups alone, so ociruntime runs criu in the new cgroup itself.
    pid2 = restore(oci, other, b, images, "--manage-cgroups-mode", "ignore")
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
    pre_blocks = sum(p.stat().st_blocks for p in pre.glob("pages-*.img"))
    checkpoint(oci, cid, final, "--parent-path", "../pre", "--auto-dedup", "--manage-cgroups-mode", "full")
    assert os.path.realpath(final / "parent") == str(pre), "criu did not link the parent images"
    # --auto-dedup: the pages dumped again (the counter's changed ones) are punched out of
    # the parent's images.
    assert sum(p.stat().st_blocks for p in pre.glob("pages-*.img")) < pre_blocks
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_criu(tmp_path: Path, *args: str) -> subprocess.Popen:
    """A criu server (page-server, lazy-pages) in the background, returned once it says it is
    ready on its --status-fd."""
    r, w = os.pipe()
    _PIPES.append(r)
    proc = subprocess.Popen(["criu", *args, "--status-fd", str(w)], pass_fds=(w,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / f"{args[0]}.out").open("wb"))
    _PROCS.append(proc)
    os.close(w)
    ready = select.select([r], [], [], CRIU_TIMEOUT)[0]
    assert ready and os.read(r, 1) == b"\0", f"criu {args[0]} did not start: " + \
        (tmp_path / f"{args[0]}.out").read_text()
    return proc


def test_page_server_work_path_empty_ns_and_criu_path(oci: Runtime, bundle, tmp_path: Path) -> None:
    """--page-server: the memory goes to a `criu page-server` (its directory gets the pages, the
    image directory the rest), and the two together restore. --work-path gets criu's log;
    --empty-ns network leaves the network namespace out of the images; --criu runs the criu it
    names."""
    b = counter_bundle(bundle)
    cid = oci.new_id("ps")
    run_counter(oci, b, cid)
    images, served, work = tmp_path / "images", tmp_path / "served", tmp_path / "work"
    served.mkdir()
    port = free_port()
    server = start_criu(tmp_path, "page-server", "-D", str(served), "--address", "127.0.0.1",
                        "--port", str(port), "-o", "page-server.log")
    # --criu: a criu of another name that says it ran.
    wrapper = tmp_path / "my-criu"
    wrapper.write_text(f"#!/bin/sh\necho \"$1\" >> {tmp_path}/my-criu.ran\nexec {shutil.which('criu')} \"$@\"\n")
    wrapper.chmod(0o755)
    res = oci.run("--criu", str(wrapper), "checkpoint", "--image-path", str(images), "--work-path", str(work),
                  "--page-server", f"127.0.0.1:{port}", "--empty-ns", "network", cid, timeout=CRIU_TIMEOUT)
    assert res.returncode == 0, f"{res.stderr.decode()}\n{criu_errors(work)}\n{criu_errors(served)}"
    assert server.wait(CRIU_TIMEOUT) == 0, criu_errors(served)  # one session, then it ends
    assert (tmp_path / "my-criu.ran").read_text() == "dump\n"
    assert (work / "dump.log").exists() and not (images / "dump.log").exists(), "--work-path gets the log"
    assert list(served.glob("pages-*.img")) and not list(images.glob("pages-*.img")), \
        "the memory pages must be in the page server's directory only"
    assert (images / "inventory.img").exists()
    assert not list(images.glob("netdev-*.img")), "--empty-ns network: no network namespace dumped"
    before = stays_still(b / "rootfs")

    for img in served.glob("*.img"):  # what a migration does: both halves to one place
        shutil.move(img, images / img.name)
    pid = restore(oci, cid, b, images, "--empty-ns", "network")
    assert_counted_on(wait_numbers(b / "rootfs", len(before) + 3))
    # criu made the network namespace empty: lo is down (the caller would set it up), where a
    # restored one has it up (test_checkpoint_restore_continues).
    assert lo_flags(oci, cid) == "<LOOPBACK>"
    assert pid == oci.state(cid)["pid"]
    oci.run("delete", "-f", cid, check=True)
    assert leaks(oci.root, cid, b) == []


def test_lazy_pages_with_status_fd(oci: Runtime, bundle, tmp_path: Path) -> None:
    """Post-copy migration: `checkpoint --lazy-pages --page-server` dumps all but the memory and
    serves the pages; criu writes its readiness byte to --status-fd; `criu lazy-pages` fetches
    them for `restore --lazy-pages` (another ID: the original exists until the last page has
    gone), and the copy counts on from where the original stopped."""
    b = counter_bundle(bundle)
    cid = oci.new_id("lz")
    run_counter(oci, b, cid)
    images, port = tmp_path / "images", free_port()
    ready_r, ready_w = os.pipe()
    _PIPES.append(ready_r)
    log = (tmp_path / "checkpoint.out").open("wb")
    dump = subprocess.Popen(oci.cmd("checkpoint", "--image-path", str(images), "--lazy-pages", "--page-server",
                                    f"127.0.0.1:{port}", "--status-fd", str(ready_w), cid),
                            pass_fds=(ready_w,), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    os.close(ready_w)
    try:
        readable = select.select([ready_r], [], [], CRIU_TIMEOUT)[0]
        assert readable and os.read(ready_r, 1) == b"\0", \
            f"no readiness byte on --status-fd: {(tmp_path / 'checkpoint.out').read_text()}\n{criu_errors(images)}"
        assert (images / "inventory.img").exists(), "the images are written before the memory is served"
        before = stays_still(b / "rootfs")
        lazy = start_criu(tmp_path, "lazy-pages", "--page-server", "--address", "127.0.0.1", "--port", str(port),
                          "-D", str(images), "-W", str(images), "-o", "lazy-pages.log")
        other = oci.new_id("lz2")
        restore(oci, other, b, images, "--lazy-pages")
        assert_counted_on(wait_numbers(b / "rootfs", len(before) + 3))
        assert dump.wait(CRIU_TIMEOUT) == 0, (tmp_path / "checkpoint.out").read_text()
        assert lazy.wait(CRIU_TIMEOUT) == 0, criu_errors(images)
        assert oci.status(cid) == "absent", "the original goes once its last page is served"
        assert host_cgroup_dirs(cid) == []
        oci.run("delete", "-f", other, check=True)
        assert leaks(oci.root, other, b) == []
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()
        log.close()


def flock_bundle(bundle) -> Path:
    """The counter under util-linux flock(1) holding /lock (busybox has no flock): the guest's
    /usr bound in read-only, a bind mount criu treats as external."""
    def edit(cfg: dict) -> None:
        cfg["root"]["readonly"] = False
        cfg["process"]["args"] = ["/usr/bin/flock", "/lock", *COUNTER]
        cfg["mounts"].append({"destination": "/usr", "type": "bind", "source": "/usr",
                              "options": ["rbind", "ro"]})

    b = bundle(COUNTER, edit=edit)
    for name in ("lib", "lib64"):  # the dynamic loader's and libc's paths, as on the host
        (b / "rootfs" / name).symlink_to(f"usr/{name}")
    return b


def lock_is_held(path: Path) -> bool:
    import fcntl

    with open(path, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_file_locks(oci: Runtime, bundle, tmp_path: Path) -> None:
    """criu refuses a held file lock without --file-locks, naming the flag, and leaves the
    container running; with it the dump works and restore --file-locks takes the lock again."""
    b = flock_bundle(bundle)
    cid = oci.new_id("fl")
    with_pipes(oci, "run", "-d", "-b", str(b), cid)
    wait_numbers(b / "rootfs", 3)
    pid = oci.state(cid)["pid"]
    assert lock_is_held(b / "rootfs" / "lock")
    images = tmp_path / "images"
    res = oci.run("checkpoint", "--leave-running", "--image-path", str(images), cid, timeout=CRIU_TIMEOUT)
    line = assert_clean_error(res, "criu dump failed", "dump.log")
    assert "file-locks" in line, f"{line}\n{criu_errors(images)}"
    st = oci.state(cid)
    assert (st["status"], st["pid"]) == ("running", pid), "a failed dump must leave it running"
    checkpoint(oci, cid, images, "--file-locks")
    assert not lock_is_held(b / "rootfs" / "lock"), "the dumped processes are gone, and their lock"
    before = stays_still(b / "rootfs")
    restore(oci, cid, b, images, "--file-locks")
    assert_counted_on(wait_numbers(b / "rootfs", len(before) + 3))
    assert lock_is_held(b / "rootfs" / "lock"), "restore --file-locks must take the lock again"
    oci.run("delete", "-f", cid, check=True)
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
