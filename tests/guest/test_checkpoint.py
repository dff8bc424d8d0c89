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


def writable(cfg: dict) -> None:
    cfg["root"]["readonly"] = False


def counter_bundle(bundle) -> Path:
    return bundle(COUNTER, edit=writable)


def numbers(rootfs: Path, name: str = "log") -> list[int]:
    text = (rootfs / name).read_text() if (rootfs / name).exists() else ""
    return [int(x) for x in text.split()]


def wait_numbers(rootfs: Path, at_least: int, timeout: float = 30, name: str = "log") -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        seen = numbers(rootfs, name)
        if len(seen) >= at_least or time.monotonic() > deadline:
            assert len(seen) >= at_least, f"the counter stalled at {seen[-5:]}"
            return seen


def assert_counted_on(seen: list[int]) -> None:
    """1..n with nothing missing, repeated or restarted."""
    assert seen == list(range(1, len(seen) + 1)), f"not a continuous count: {seen}"


def stays_still(rootfs: Path, seconds: float = 1.0, name: str = "log") -> list[int]:
    before = numbers(rootfs, name)
    time.sleep(seconds)
    after = numbers(rootfs, name)
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


def with_pipes(rt: Runtime, *args: str, fd3: int | None = None) -> None:
    """Run a runtime command whose container keeps its stdio: /dev/null and a pipe, as engines
    give (conmon, containerd's shim). A file of the host's mount namespace as stdio is out of
    criu's reach; a pipe is handed over by restore (descriptors.json). fd3: given to the
    command as its fd 3 (for --preserve-fds 1)."""
    r, w = os.pipe()
    _PIPES.append(r)
    try:
        with_stdio(rt, subprocess.DEVNULL, w, r, *args, fd3=fd3)
    finally:
        os.close(w)


def with_stdio(rt: Runtime, stdin, out: int, readback: int, *args: str, fd3: int | None = None) -> None:
    """Run a runtime command with that stdin and `out` as stdout and stderr; on failure, what
    it wrote is read back from `readback` (the pipe's or the pty's other end)."""
    # Python's fds are close-on-exec: with close_fds off only stdio and the dup2'd fd 3 pass.
    res = subprocess.run(rt.cmd(*args), stdin=stdin, stdout=out, stderr=out, timeout=CRIU_TIMEOUT,
                         close_fds=fd3 is None,
                         preexec_fn=(lambda: os.dup2(fd3, 3)) if fd3 is not None else None)
    if res.returncode != 0:
        os.set_blocking(readback, False)
        try:
            out_text = os.read(readback, 65536).decode(errors="replace")
        except BlockingIOError:
            out_text = ""
        images = Path(args[args.index("--image-path") + 1]) if "--image-path" in args else None
        raise AssertionError(f"{args} failed ({res.returncode}): {out_text}\n{criu_errors(images) if images else ''}")


def run_counter(rt: Runtime, b: Path, cid: str) -> int:
    with_pipes(rt, "run", "-d", "-b", str(b), cid)
    wait_numbers(b / "rootfs", 5)
    return rt.state(cid)["pid"]


def criu_errors(directory: Path) -> str:
    """criu's error lines in its logs there: what a failed step's message leaves out."""
    lines = []
    for log in sorted(directory.glob("*.log")):
        lines += [f"{log.name}: {ln}" for ln in log.read_text(errors="replace").splitlines() if "Error" in ln]
    return "\n".join(lines[-30:] + [describe_task(int(pid)) for pid in unseizable(lines)])


def unseizable(lines: list[str]) -> set[str]:
    """The pids criu could not stop ("Unseizable non-zombie 2354 found, state D")."""
    return {ln.split("non-zombie ", 1)[1].split()[0] for ln in lines if "Unseizable non-zombie " in ln}


def describe_task(pid: int) -> str:
    """What a task criu could not stop is and where it sleeps in the kernel (CI once saw one in
    D state; this says which and why when it happens again)."""
    parts = []
    for name in ("comm", "cmdline", "wchan", "stack", "status"):
        try:
            text = Path(f"/proc/{pid}/{name}").read_text(errors="replace").replace("\0", " ").strip()
            text = " | ".join(text.splitlines()) if name == "stack" else text
        except OSError as e:
            text = f"({e.strerror})"
        if name == "status":
            text = " ".join(ln for ln in text.splitlines() if ln.startswith(("State", "PPid", "SigQ")))
        parts.append(f"{name}: {text}")
    return f"task {pid}: " + "; ".join(parts)


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


# --- what criu refuses without a flag: TCP, a tty from outside, outside unix sockets, cgroups ---
def refused_dump(rt: Runtime, cid: str, images: Path, *mentions: str) -> str:
    """A checkpoint refused with one line naming the problem; the container is left running."""
    pid = rt.state(cid)["pid"]
    res = rt.run("checkpoint", "--image-path", str(images), cid, timeout=CRIU_TIMEOUT)
    line = assert_clean_error(res, *mentions)
    st = rt.state(cid)
    assert (st["status"], st["pid"]) == ("running", pid), "a refused dump must leave it running"
    return line


def refused_restore(rt: Runtime, cid: str, b: Path, images: Path, *mentions: str, flags: tuple = ()) -> str:
    """A restore refused with one line naming the problem; nothing is left of it."""
    res = rt.run("restore", "-d", "-b", str(b), "--image-path", str(images), *flags, cid, timeout=CRIU_TIMEOUT)
    line = assert_clean_error(res, *mentions)
    assert leaks(rt.root, cid, b) == []
    return line


# A busybox nc server and client over the container's own lo: the client sends the count,
# the server writes what it receives to /received (its stdin a pipe that never ends, so it
# never half-closes the connection).
TCP_COUNTER = ["sh", "-c", "sleep 1000000 | nc -l -p 5000 > /received & "
               "until netstat -ltn | grep -q ':5000 '; do sleep 0.1; done; "
               "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done | nc 127.0.0.1 5000"]


def test_tcp_established(oci: Runtime, bundle, tmp_path: Path) -> None:
    """criu refuses an established TCP connection without --tcp-established, naming the flag,
    and the connection goes on; a restore without it is refused too; with the flag on both the
    same connection carries the count on after restore (nc accepts one connection only)."""
    b = bundle(TCP_COUNTER, edit=writable)
    rootfs = b / "rootfs"
    cid = oci.new_id("tcp")
    with_pipes(oci, "run", "-d", "-b", str(b), cid)
    wait_numbers(rootfs, 5, name="received")
    refused_dump(oci, cid, tmp_path / "refused", "criu dump failed", "Connected TCP socket",
                 "--tcp-established", "dump.log")
    wait_numbers(rootfs, len(numbers(rootfs, "received")) + 3, name="received")  # still connected
    images = tmp_path / "images"
    checkpoint(oci, cid, images, "--tcp-established")
    assert oci.status(cid) == "absent"
    before = stays_still(rootfs, name="received")
    refused_restore(oci, cid, b, images, "criu restore failed", "Connected TCP socket in image", "restore.log")
    restore(oci, cid, b, images, "--tcp-established")
    assert_counted_on(wait_numbers(rootfs, len(before) + 5, name="received"))
    oci.run("delete", "-f", cid, check=True)
    assert leaks(oci.root, cid, b) == []


TTY_COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; echo $i >> /log; sleep 0.1; done"]


def tty_numbers(master: int, above: int, timeout: float = 30) -> list[int]:
    """The numbers the container writes on the tty, read until one above `above` shows."""
    text, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.5)[0]:
            text += os.read(master, 4096)
            seen = [int(x) for x in text.split(b"\n")[:-1] if x.strip()]
            if seen and seen[-1] > above:
                return seen
    raise AssertionError(f"no number above {above} on the tty: {text[-200:]!r}")


def drain_tty(master: int) -> list[int]:
    text = b""
    while select.select([master], [], [], 0.3)[0]:
        text += os.read(master, 4096)
    return [int(x) for x in text.split() if x.strip()]


def test_shell_job(oci: Runtime, bundle, tmp_path: Path) -> None:
    """A container whose stdio is a terminal from outside (a pty slave the caller holds, no
    process.terminal): criu can neither take nor name it ("Can't lookup mount=N for fd=0
    path=/dev/pts/0"), so checkpoint refuses it without --shell-job; with it the terminal is
    declared external and restore --shell-job hands its own terminal over: the restored
    process writes there, going on from where it was. A restore without the flag, or not on
    a terminal, is refused."""
    master, slave = os.openpty()
    _PIPES.extend((master, slave))
    b = bundle(TTY_COUNTER, edit=writable)
    cid = oci.new_id("sj")
    with_stdio(oci, slave, slave, master, "run", "-d", "-b", str(b), cid)
    assert tty_numbers(master, 3)[:3] == [1, 2, 3]
    refused_dump(oci, cid, tmp_path / "refused", "stdin is a terminal from outside", "--shell-job")
    images = tmp_path / "images"
    checkpoint(oci, cid, images, "--shell-job")
    assert oci.status(cid) == "absent"
    before = stays_still(b / "rootfs")
    on_tty = drain_tty(master)
    refused_restore(oci, cid, b, images, "--shell-job")  # no flag
    refused_restore(oci, cid, b, images, "restore's stdin must be one", flags=("--shell-job",))  # no tty
    with_stdio(oci, slave, slave, master, "restore", "-d", "-b", str(b), "--image-path", str(images),
               "--shell-job", cid)
    pid = oci.state(cid)["pid"]
    after = tty_numbers(master, on_tty[-1] + 2)
    assert after[0] == on_tty[-1] + 1, f"the tty must go on from {on_tty[-1]}: {after[:5]}"
    assert os.readlink(f"/proc/{pid}/fd/1") == os.ttyname(slave)
    assert_counted_on(wait_numbers(b / "rootfs", len(before) + 3))
    oci.run("delete", "-f", cid, check=True)
    assert leaks(oci.root, cid, b) == []


DGRAM_COUNTER = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i >&3; sleep 0.1; done"]


def datagrams(sock: socket.socket, above: int, timeout: float = 30) -> list[int]:
    got, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([sock], [], [], 0.5)[0]:
            got.append(int(sock.recv(64)))
            if got[-1] > above:
                return got
    raise AssertionError(f"no datagram above {above}: got {got[-5:]}")


def drain_datagrams(sock: socket.socket, quiet: float = 1.0) -> list[int]:
    got = []
    while select.select([sock], [], [], quiet)[0]:
        got.append(int(sock.recv(64)))
    return got


def test_ext_unix_sk(oci: Runtime, bundle, tmp_path: Path) -> None:
    """The shape criu 3.17 takes: a datagram socket connected to a socket bound in a host
    directory that is bound into the container at the same path (criu connects the restored
    socket to that name, from the container's root), both in the network namespace the
    container runs in (the host's: criu finds sockets only in the namespaces it dumps, a
    socket from another one is "Unix socket N not found"). Refused without --ext-unix-sk; with
    it, the host side gets the count again after restore, going on from where it was."""
    sockdir = tmp_path / "sockdir"
    sockdir.mkdir()
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sockdir / "log"))
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.connect(str(sockdir / "log"))

    def edit(cfg: dict) -> None:
        writable(cfg)
        cfg["process"]["args"] = DGRAM_COUNTER
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "network"]
        cfg["mounts"].append({"destination": str(sockdir), "type": "bind", "source": str(sockdir),
                              "options": ["rbind"]})

    b = bundle(edit=edit)
    cid = oci.new_id("xu")
    try:
        with_pipes(oci, "run", "-d", "--preserve-fds", "1", "-b", str(b), cid, fd3=sender.fileno())
        sender.close()
        got = datagrams(receiver, 3)
        refused_dump(oci, cid, tmp_path / "refused", "criu dump failed", "External socket is used",
                     "--ext-unix-sk", "dump.log")
        got += datagrams(receiver, got[-1] + 2)  # still sending
        images = tmp_path / "images"
        checkpoint(oci, cid, images, "--ext-unix-sk")
        assert oci.status(cid) == "absent"
        got += drain_datagrams(receiver)
        assert got == list(range(1, len(got) + 1)), got
        restore(oci, cid, b, images, "--ext-unix-sk")
        after = datagrams(receiver, got[-1] + 3)
        assert after[0] == got[-1] + 1, f"the restored container must go on from {got[-1]}: {after[:5]}"
        oci.run("delete", "-f", cid, check=True)
        assert leaks(oci.root, cid, b) == []
    finally:
        receiver.close()
        sender.close()


def test_manage_cgroups_strict(oci: Runtime, bundle, tmp_path: Path) -> None:
    """strict: criu makes the container's cgroup itself and refuses one that exists (a soft
    restore joins it); the restored container sits in its config's cgroup with the config's
    pids limit (criu 3.17 restores no v2 limits: ociruntime sets the config's after criu)."""
    def edit(cfg: dict) -> None:
        writable(cfg)
        cfg["linux"]["resources"]["pids"] = {"limit": 77}

    b = bundle(COUNTER, edit=edit)
    cid = oci.new_id("st")
    pid = run_counter(oci, b, cid)
    cg = Path("/sys/fs/cgroup") / cgroup_of(pid).lstrip("/")
    assert (cg / "pids.max").read_text().strip() == "77"
    images = tmp_path / "images"
    checkpoint(oci, cid, images, "--manage-cgroups-mode", "strict")
    before = stays_still(b / "rootfs")

    taken = oci.new_id("st2")
    taken_cg = cg.parent / taken
    taken_cg.mkdir()  # a cgroup that exists where the restored one would go
    try:
        res = oci.run("restore", "-d", "-b", str(b), "--image-path", str(images), "--manage-cgroups-mode",
                      "strict", taken, timeout=CRIU_TIMEOUT)
        assert_clean_error(res, "criu restore failed", "Abort restore of existing cgroups", "restore.log")
        assert oci.status(taken) == "absent"
        assert taken_cg.is_dir(), "a cgroup that existed before must be left alone"
        soft = restore(oci, taken, b, images)  # without strict it joins the cgroup
        assert cgroup_of(soft).endswith("/" + taken)
        oci.run("delete", "-f", taken, check=True)
        assert taken_cg.is_dir(), "a cgroup that existed before must be left alone"
    finally:
        taken_cg.rmdir()
    written = len(stays_still(b / "rootfs", 0.5))  # the soft copy's numbers are in the log too

    pid = restore(oci, cid, b, images, "--manage-cgroups-mode", "strict")
    assert cgroup_of(pid).endswith("/" + cid)
    assert (cg / "pids.max").read_text().strip() == "77", "the config's pids limit"
    seen = wait_numbers(b / "rootfs", written + 3)
    assert seen[written:written + 3] == [before[-1] + 1, before[-1] + 2, before[-1] + 3], \
        "the restored container must go on from the number it had at the dump"
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
