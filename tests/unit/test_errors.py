"""Errors keep their errno, operation and path, across the sync socket too (issue 15 item 7)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from ociruntime.errors import CgroupError, HookError, SetupError, SyscallError
from ociruntime.linux import cgroups, sync


def _round_trip(err: BaseException) -> SetupError:
    child, parent = sync.socketpair()
    try:
        sync.send_error(child, err)
        msg = sync.recv(parent)
        assert msg is not None and msg["t"] == "error"
        return sync.error_from(msg)
    finally:
        os.close(child)
        os.close(parent)


def test_a_failed_hook_reaches_the_parent_as_a_hook_error() -> None:
    got = _round_trip(HookError("hook createRuntime /bin/false failed: exit status 1"))
    assert type(got) is HookError
    assert str(got) == "hook createRuntime /bin/false failed: exit status 1"


def test_a_failed_syscall_keeps_errno_operation_and_path_across_the_socket() -> None:
    got = _round_trip(SyscallError(errno.EACCES, "mount proc on /proc", "/proc"))
    assert type(got) is SyscallError
    assert (got.errno, got.operation, got.path) == (errno.EACCES, "mount proc on /proc", "/proc")
    assert str(got) == "mount proc on /proc: Permission denied"


def test_an_unexpected_error_in_the_child_is_named_by_its_type() -> None:
    got = _round_trip(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x"))
    assert type(got) is SetupError
    assert str(got) == "FileNotFoundError: [Errno 2] No such file or directory: '/x'"
    assert (got.errno, got.path) == (errno.ENOENT, "/x")


def test_expect_raises_the_childs_error_type() -> None:
    child, parent = sync.socketpair()
    try:
        sync.send_error(child, CgroupError("cgroup: write 1 to /x: invalid argument", errno=errno.EINVAL))
        with pytest.raises(CgroupError) as exc:
            sync.expect(parent, "go", "waiting")
        assert exc.value.errno == errno.EINVAL
    finally:
        os.close(child)
        os.close(parent)


def test_a_cgroup_write_error_keeps_the_errno_and_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-cgroup" / "memory.max")
    with pytest.raises(CgroupError) as exc:
        cgroups.write_file(missing, "5")
    assert exc.value.errno == errno.ENOENT
    assert exc.value.path == missing
    assert str(exc.value) == f"cgroup: write 5 to {missing}: no such file or directory"
    assert cgroups.read_procs(str(tmp_path / "gone")) == []  # ENOENT read by number


def test_an_os_error_keeps_its_text_and_number() -> None:
    err = SyscallError.from_os(OSError(errno.EINVAL, "not a procfs file"), "linux.sysctl: write 1")
    assert str(err) == "linux.sysctl: write 1: not a procfs file"
    assert err.errno == errno.EINVAL


def test_a_cleanup_that_cannot_open_a_pidfd_says_so_as_ours(tmp_path: Path) -> None:
    """kill_and_wait out of descriptors (EMFILE: a real fd table, filled): an error of ours
    naming pidfd_open, which a create's undo reports as a warning before the error that made it
    undo, instead of a bare OSError that would replace that error."""
    import subprocess
    import sys

    script = (
        "import os, resource, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})\n"
        "from ociruntime.container import kill_and_wait\n"
        "from ociruntime.errors import SyscallError\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.close(w)\n"
        "    os.read(r, 1)\n"
        "    os._exit(0)\n"
        "os.close(r)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "held = []\n"
        "try:\n"
        "    while True:\n"
        "        held.append(os.open('/dev/null', os.O_RDONLY))\n"
        "except OSError:\n"
        "    pass\n"
        "try:\n"
        "    kill_and_wait(pid)\n"
        "except SyscallError as e:\n"
        "    print(e.errno, e)\n"
        "finally:\n"
        "    os.close(w)  # the child's read ends: it exits\n"
        "    os.waitpid(pid, 0)\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    assert out.startswith(f"{errno.EMFILE} pidfd_open of the container init (pid "), out
