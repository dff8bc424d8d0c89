"""checkpoint / restore bad input that is caught before criu does anything (issue 16 point 4).

These run on the host, where criu cannot work (Debian's criu 3.17 cannot read this kernel's
vDSO layout; the real checkpoint and restore tests are tests/guest/test_checkpoint.py). Each
failure is one line naming the argument or path, exit status 1, a JSON error line in --log, and
nothing left behind: no state dir, cgroup, mount or process of the would-be container, the
checkpointed container untouched and still running, no image directory made."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error, assert_json_error_log, leaks

LOOP = ["sh", "-c", "while true; do sleep 1; done"]


@pytest.fixture
def running(oci: Runtime, bundle) -> tuple[str, Path]:
    b = bundle(LOOP)
    cid = oci.new_id("ck")
    oci.run("run", "-d", "-b", str(b), cid, check=True)
    assert oci.status(cid) == "running"
    return cid, b


def fake_images(path: Path) -> Path:
    """A directory that passes restore's own checks (a non-empty inventory.img): enough to
    reach the checks that come after it."""
    path.mkdir()
    (path / "inventory.img").write_bytes(b"not really an image")
    return path


def test_checkpoint_criu_absent(oci: Runtime, running, tmp_path: Path) -> None:
    cid, _ = running
    images = tmp_path / "images"
    log = tmp_path / "log.json"
    res = oci.run("--criu", "/nonexistent/criu", "checkpoint", "--image-path", str(images), cid,
                  log_json=log)
    assert_clean_error(res, "criu", "/nonexistent/criu")
    assert_json_error_log(log)
    assert not images.exists(), "an image directory was made for a checkpoint that never ran"
    assert oci.status(cid) == "running"


def test_checkpoint_criu_not_in_path(oci: Runtime, running, tmp_path: Path) -> None:
    cid, _ = running
    env = {**os.environ, "PATH": str(tmp_path)}  # a PATH with no criu in it
    res = oci.run("checkpoint", "--image-path", str(tmp_path / "images"), cid, env=env)
    assert_clean_error(res, "criu", "PATH")
    assert oci.status(cid) == "running"


@pytest.mark.parametrize("start_as, words", [("created", ("created", "not running")),
                                             ("stopped", ("not running",)),
                                             ("absent", ("does not exist",))])
def test_checkpoint_not_running(oci: Runtime, bundle, tmp_path: Path, start_as: str,
                                words: tuple[str, ...]) -> None:
    cid = oci.new_id("ck")
    b = bundle(LOOP)
    if start_as != "absent":
        oci.run("create", "-b", str(b), cid, check=True)
    if start_as == "stopped":
        oci.run("start", cid, check=True)
        oci.run("kill", cid, "KILL", check=True)
        assert oci.wait_status(cid, "stopped") == "stopped"
    images = tmp_path / "images"
    res = oci.run("checkpoint", "--image-path", str(images), cid)
    assert_clean_error(res, cid, *words)
    assert not images.exists()
    assert oci.status(cid) == (start_as if start_as != "absent" else "absent")


@pytest.mark.parametrize("flags, words", [
    (["--manage-cgroups-mode", "loose"], ("--manage-cgroups-mode", "loose")),
    (["--empty-ns", "ipc"], ("--empty-ns", "ipc")),
    (["--page-server", "nowhere"], ("--page-server", "nowhere")),
    (["--status-fd", "x"], ("--status-fd",)),
    (["--status-fd", "987"], ("--status-fd", "987")),
])
def test_checkpoint_bad_flags(oci: Runtime, running, tmp_path: Path, flags: list[str],
                              words: tuple[str, ...]) -> None:
    cid, _ = running
    images = tmp_path / "images"
    res = oci.run("checkpoint", "--image-path", str(images), *flags, cid)
    assert_clean_error(res, *words)
    assert not images.exists()
    assert oci.status(cid) == "running"


def test_checkpoint_status_fd_read_only(oci: Runtime, running, tmp_path: Path) -> None:
    cid, _ = running
    r, w = os.pipe()
    try:
        res = oci.run("checkpoint", "--image-path", str(tmp_path / "images"), "--status-fd", str(r), cid,
                      pass_fds=(r,))
    finally:
        os.close(r)
        os.close(w)
    assert_clean_error(res, "--status-fd", str(r), "writing")
    assert oci.status(cid) == "running"


def test_restore_missing_image_dir(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(LOOP)
    cid = oci.new_id("rs")
    log = tmp_path / "log.json"
    res = oci.run("restore", "-d", "-b", str(b), "--image-path", str(tmp_path / "nothing"), cid,
                  log_json=log)
    assert_clean_error(res, "--image-path", str(tmp_path / "nothing"), "no such directory")
    assert_json_error_log(log)
    assert leaks(oci.root, cid, b) == []


def test_restore_not_a_checkpoint(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(LOOP)
    cid = oci.new_id("rs")
    empty = tmp_path / "empty"
    empty.mkdir()
    res = oci.run("restore", "-d", "-b", str(b), "--image-path", str(empty), cid)
    assert_clean_error(res, str(empty), "inventory.img")
    assert leaks(oci.root, cid, b) == []
    (empty / "inventory.img").write_bytes(b"")  # truncated to nothing
    res = oci.run("restore", "-d", "-b", str(b), "--image-path", str(empty), cid)
    assert_clean_error(res, "inventory.img", "empty")
    assert leaks(oci.root, cid, b) == []


def test_restore_image_path_is_a_file(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(LOOP)
    cid = oci.new_id("rs")
    (tmp_path / "file").write_text("x")
    res = oci.run("restore", "-d", "-b", str(b), "--image-path", str(tmp_path / "file"), cid)
    assert_clean_error(res, "--image-path", "not a directory")
    assert leaks(oci.root, cid, b) == []


def test_restore_running_id(oci: Runtime, running, tmp_path: Path) -> None:
    cid, b = running
    pid = oci.state(cid)["pid"]
    res = oci.run("restore", "-d", "-b", str(b), "--image-path", str(fake_images(tmp_path / "img")), cid)
    assert_clean_error(res, cid, "already exists")
    st = oci.state(cid)
    assert (st["status"], st["pid"]) == ("running", pid), "the running container was disturbed"


def test_restore_criu_absent(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(LOOP)
    cid = oci.new_id("rs")
    log = tmp_path / "log.json"
    res = oci.run("--criu", "/nonexistent/criu", "restore", "-d", "-b", str(b), "--image-path",
                  str(fake_images(tmp_path / "img")), cid, log_json=log)
    assert_clean_error(res, "criu", "/nonexistent/criu")
    assert_json_error_log(log)
    assert leaks(oci.root, cid, b) == []


def test_restore_bad_flags(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(LOOP)
    cid = oci.new_id("rs")
    images = str(fake_images(tmp_path / "img"))
    for flags, words in ((["--manage-cgroups-mode", "hard"], ("--manage-cgroups-mode", "hard")),
                         (["--lsm-profile", "tomoyo:x"], ("--lsm-profile", "tomoyo:x")),
                         (["--empty-ns", "pid"], ("--empty-ns", "pid"))):
        res = oci.run("restore", "-d", "-b", str(b), "--image-path", images, *flags, cid)
        assert_clean_error(res, *words)
        assert leaks(oci.root, cid, b) == []


@pytest.mark.parametrize("command", ["checkpoint", "restore"])
def test_help_has_every_runc_flag(oci: Runtime, runc: Runtime, command: str) -> None:
    """`COMMAND --help` exits 0 (podman runs `checkpoint --help` to decide whether a runtime can
    checkpoint) and lists every flag runc's help on this host lists."""
    import re

    ours = oci.run(command, "--help")
    assert ours.returncode == 0
    theirs = runc.run(command, "--help", check=True).stdout.decode()
    runc_flags = set(re.findall(r"^\s+(?:-\w, )?--([\w-]+)", theirs, re.M)) - {"help"}
    assert len(runc_flags) > 10, theirs
    our_flags = set(re.findall(r"--([\w-]+)", ours.stdout.decode()))
    assert runc_flags - our_flags == set()


def test_restore_no_subreaper_in_the_foreground(oci: Runtime, bundle, tmp_path: Path) -> None:
    """The restored init is criu's child: without a subreaper a foreground restore could not
    wait for it (runc waits forever); refused before anything is made."""
    b = bundle(LOOP)
    cid = oci.new_id("rs")
    res = oci.run("restore", "--no-subreaper", "-b", str(b), "--image-path",
                  str(fake_images(tmp_path / "img")), cid)
    assert_clean_error(res, "--no-subreaper", "--detach")
    assert leaks(oci.root, cid, b) == []


def test_restore_console_socket_without_terminal(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(LOOP)
    cid = oci.new_id("rs")
    # --criu /bin/true: found and executable, so the check that comes after it is reached
    # whether or not this host has criu (it never runs).
    res = oci.run("--criu", "/bin/true", "restore", "-d", "-b", str(b), "--console-socket",
                  str(tmp_path / "console.sock"), "--image-path", str(fake_images(tmp_path / "img")), cid)
    assert_clean_error(res, "--console-socket", "process.terminal")
    assert leaks(oci.root, cid, b) == []


def test_terminal_container_is_refused(oci: Runtime, bundle, tmp_path: Path) -> None:
    """process.terminal: the pty master is held outside the container and criu's command line
    cannot hand a new one back, so neither checkpoint nor restore tries (one clear line; the
    container untouched, nothing made)."""
    from tests.integration.test_terminal import create_with_console, terminal_bundle

    b = terminal_bundle(bundle, LOOP)
    cid = oci.new_id("tty")
    _, recv = create_with_console(oci, b, tmp_path, cid)
    try:
        oci.run("start", cid, check=True)
        images = tmp_path / "images"
        res = oci.run("--criu", "/bin/true", "checkpoint", "--image-path", str(images), cid)
        assert_clean_error(res, cid, "process.terminal", "not supported")
        assert not images.exists()
        assert oci.status(cid) == "running"
        oci.run("delete", "-f", cid, check=True)

        recv2 = tmp_path / "console2.sock"
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
            srv.bind(str(recv2))
            srv.listen(1)
            res = oci.run("--criu", "/bin/true", "restore", "-d", "-b", str(b), "--console-socket",
                          str(recv2), "--image-path", str(fake_images(tmp_path / "img")), cid)
        assert_clean_error(res, cid, "process.terminal", "not supported")
        assert leaks(oci.root, cid, b) == []
    finally:
        recv.close()


def processes_naming(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(pid + ": " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_restore_criu_restores_nothing(oci: Runtime, bundle, tmp_path: Path) -> None:
    """A criu that exits 0 without restoring anything (/bin/true): one clear line, and nothing
    of the restore is left: no state dir, no cgroup, not the child that held the new cgroup
    while criu ran (a fork of the runtime: its command line names the container)."""
    b = bundle(LOOP)
    cid = oci.new_id("rs")
    res = oci.run("--criu", "/bin/true", "restore", "-d", "-b", str(b), "--image-path",
                  str(fake_images(tmp_path / "img")), cid)
    assert_clean_error(res, "criu restore", "pid file")
    assert leaks(oci.root, cid, b) == []
    assert processes_naming(cid) == []


# --- --shell-job and strict: refused before criu (the guest test shows criu's own side) -----
def test_checkpoint_outside_terminal_needs_shell_job(oci: Runtime, bundle, tmp_path: Path) -> None:
    """stdio a terminal from outside the container (no process.terminal): criu alone fails with
    "Can't lookup mount=N for fd=0 path=/dev/pts/0"; checkpoint says what is needed instead."""
    master, slave = os.openpty()
    try:
        b = bundle(LOOP)
        cid = oci.new_id("sj")
        subprocess.run(oci.cmd("run", "-d", "-b", str(b), cid), stdin=slave, stdout=slave,
                       stderr=slave, check=True, timeout=30)
        images = tmp_path / "images"
        log = tmp_path / "log.json"
        res = oci.run("--criu", "/bin/true", "checkpoint", "--image-path", str(images), cid, log_json=log)
        assert_clean_error(res, cid, "stdin is a terminal from outside the container", "--shell-job")
        assert_json_error_log(log)
        assert not images.exists()
        assert oci.status(cid) == "running"
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("record, flags, words", [
    ('{"0": "tty[8800:19]"}', [], ("terminal from outside", "--shell-job")),
    ('{"0": "tty[8800:19]"}', ["--shell-job"], ("restore's stdin must be one",)),  # stdin not a tty
    ('{"7": "/etc/passwd"}', ["--shell-job"], ("outside-ttys.json", "corrupt checkpoint")),
    ('{"0": "tty[1:2] --action-script=/x"}', ["--shell-job"], ("outside-ttys.json", "corrupt checkpoint")),
])
def test_restore_shell_job_mistakes(oci: Runtime, bundle, tmp_path: Path, record: str, flags: list[str],
                                    words: tuple) -> None:
    b = bundle(LOOP)
    cid = oci.new_id("sj")
    images = fake_images(tmp_path / "img")
    (images / "outside-ttys.json").write_text(record)
    res = oci.run("--criu", "/bin/true", "restore", "-d", "-b", str(b), "--image-path", str(images),
                  *flags, cid, stdin=subprocess.DEVNULL)
    assert_clean_error(res, *words)
    assert leaks(oci.root, cid, b) == []


def test_restore_strict_with_systemd_cgroup(oci: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(LOOP)
    cid = oci.new_id("st")
    res = oci.run("--systemd-cgroup", "--criu", "/bin/true", "restore", "-d", "-b", str(b),
                  "--manage-cgroups-mode", "strict", "--image-path", str(fake_images(tmp_path / "img")), cid)
    assert_clean_error(res, "--manage-cgroups-mode", "strict", "--systemd-cgroup")
    assert leaks(oci.root, cid, b) == []


@pytest.mark.parametrize("record", ["descriptors.json", "outside-ttys.json"])
def test_restore_a_fifo_among_the_images_is_refused_not_waited_on(oci: Runtime, bundle, tmp_path: Path,
                                                                  record: str) -> None:
    """The images are the caller's: a FIFO named like one of checkpoint's stdio records gets one
    line, at once, and nothing of the restore is left."""
    b = bundle(LOOP)
    cid = oci.new_id("ff")
    images = fake_images(tmp_path / "img")
    os.mkfifo(images / record)
    res = oci.run("--criu", "/bin/true", "restore", "-d", "-b", str(b), "--image-path", str(images), cid,
                  stdin=subprocess.DEVNULL, timeout=15)
    assert_clean_error(res, str(images / record), "not a regular file")
    assert leaks(oci.root, cid, b) == []
