"""The runtime's messages to its children carry fds (linux/sync.py send's `fds`, expect_fds): the
v1 hierarchies' `tasks` files go with `go`, opened after the fork while the child loads its side
(Spawn.fork, Spawn.go). Real sockets and files, no root needed."""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from pathlib import Path

import pytest

from ociruntime.errors import CgroupError, SetupError
from ociruntime.linux import sync


@pytest.fixture
def pair():
    ours, theirs = sync.socketpair()
    yield ours, theirs
    os.close(ours)
    os.close(theirs)


def _open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def test_fds_arrive_with_their_message_in_order_and_close_on_exec(pair, tmp_path: Path) -> None:
    """What the child gets are the files the runtime opened (same inodes, in the order of the
    paths beside them), though the runtime closed its copies right after sending; none would
    survive the container's execve."""
    ours, theirs = pair
    files = [tmp_path / f"tasks{i}" for i in range(3)]
    fds = [os.open(f, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600) for f in files]
    sync.send(ours, "go", fds, tasks=[str(f) for f in files])
    for fd in fds:
        os.close(fd)
    msg, got = sync.expect_fds(theirs, "go", "waiting for the runtime")
    try:
        assert msg["tasks"] == [str(f) for f in files]
        assert [os.fstat(fd).st_ino for fd in got] == [f.stat().st_ino for f in files]
        assert all(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC for fd in got)
        os.write(got[1], b"0")
        assert files[1].read_bytes() == b"0"
    finally:
        for fd in got:
            os.close(fd)


def test_a_message_without_fds_reads_the_same(pair) -> None:
    """No v1 hierarchy to join (cgroup v2, systemd, an exec moved by pid): a plain `go`."""
    ours, theirs = pair
    sync.send(ours, "go", tasks=[])
    assert sync.expect_fds(theirs, "go", "waiting for the runtime") == ({"t": "go", "tasks": []}, [])


def test_an_error_or_a_wrong_message_closes_the_fds_that_came_with_it(pair, tmp_path: Path) -> None:
    """The child raises what the runtime reported, or that the message was not `go`, and keeps
    none of the fds that came with it."""
    ours, theirs = pair
    before = _open_fds()
    fd = os.open(tmp_path / "tasks", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    sync.send(ours, "error", [fd], error="CgroupError", msg="cgroup: mkdir /x: permission denied",
              errno=errno.EACCES)
    sync.send(ours, "cgroup", [fd])
    os.close(fd)
    with pytest.raises(CgroupError, match="mkdir /x"):
        sync.expect_fds(theirs, "go", "waiting for the runtime")
    with pytest.raises(SetupError, match="expected 'go', got 'cgroup'"):
        sync.expect_fds(theirs, "go", "waiting for the runtime")
    assert _open_fds() == before


def test_the_runtime_gone_reads_as_such() -> None:
    ours, theirs = sync.socketpair()
    os.close(ours)
    try:
        with pytest.raises(SetupError, match="waiting for the runtime: the other side exited"):
            sync.expect_fds(theirs, "go", "waiting for the runtime")
    finally:
        os.close(theirs)


def test_more_fds_than_a_message_carries_are_refused_on_both_sides(pair, tmp_path: Path) -> None:
    """send refuses past the shim's limit (64) before anything goes; a message that carried
    more anyway (another sender) is refused whole, the fds that made it closed."""
    import socket

    ours, theirs = pair
    fd = os.open(tmp_path / "tasks", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    before = _open_fds()
    try:
        with pytest.raises(SetupError, match="65 fds in one message, more than 64"):
            sync.send(ours, "go", [fd] * 65)
        sock = socket.socket(fileno=ours)
        try:
            sock.sendmsg([b'{"t": "go"}'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"".join(
                fd.to_bytes(4, sys.byteorder) for _ in range(70)))])
        finally:
            sock.detach()
        with pytest.raises(SetupError, match="waiting for the runtime: more than 64 fds in one message"):
            sync.expect_fds(theirs, "go", "waiting for the runtime")
        assert _open_fds() == before
    finally:
        os.close(fd)


def test_a_signal_whose_handler_returns_does_not_end_the_wait(pair) -> None:
    """recvmsg interrupted by a signal (a foreground `run` forwards signals with a handler that
    returns) is tried again, as the socket module's calls are (PEP 475): the message still
    arrives, the call does not fail with EINTR."""
    import signal
    import threading

    ours, theirs = pair
    seen = []
    armed = threading.Event()

    def late_send() -> None:
        armed.wait(10)
        time.sleep(0.3)  # well after the alarm, which comes 0.05 s after `armed`
        sync.send(ours, "go", [0], tasks=["stdin"])

    previous = signal.signal(signal.SIGALRM, lambda n, _f: seen.append(n))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    sender = threading.Thread(target=late_send)  # born with SIGALRM blocked: the waiting thread gets it
    sender.start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        armed.set()
        msg, fds = sync.expect_fds(theirs, "go", "waiting for the runtime")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sender.join()
    for fd in fds:
        os.close(fd)
    assert seen == [signal.SIGALRM]
    assert msg == {"t": "go", "tasks": ["stdin"]} and len(fds) == 1
