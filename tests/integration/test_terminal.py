"""terminal: true with --console-socket (issue 2 point 7): the pty master arrives over the unix
socket by SCM_RIGHTS, as with runc: one message, one fd, the pty name as data."""

from __future__ import annotations

import array
import fcntl
import os
import select
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Runtime, assert_clean_error

TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int): only a pty master answers it


@dataclass
class Received:
    messages: list[tuple[bytes, list[int]]] = field(default_factory=list)
    error: str = ""


class ConsoleReceiver:
    """A unix socket server that records every message and fd sent on one connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.got = Received()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError as e:
            self.got.error = str(e)
            return
        with conn:
            conn.settimeout(20)
            fd_size = array.array("i").itemsize
            while True:
                data, ancdata, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(8 * fd_size))
                fds: list[int] = []
                for level, kind, payload in ancdata:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        arr = array.array("i")
                        arr.frombytes(payload[: len(payload) - len(payload) % fd_size])
                        fds += list(arr)
                if not data and not fds:
                    return
                self.got.messages.append((data, fds))

    def result(self) -> Received:
        self.thread.join(20)
        return self.got

    def close(self) -> None:
        self.sock.close()
        for _, fds in self.got.messages:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass


def read_until(fd: int, needle: bytes, timeout: float = 5) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while needle not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the slave side closed
                break
            if not chunk:
                break
            out += chunk
    return out


def terminal_bundle(bundle, args: list[str]) -> Path:
    return bundle(args=args, edit=lambda c: c["process"].update(terminal=True))


def create_with_console(rt: Runtime, b: Path, tmp: Path, cid: str) -> tuple[Received, ConsoleReceiver]:
    recv = ConsoleReceiver(tmp / f"console-{cid}.sock")
    res = rt.run("create", "-b", str(b), "--console-socket", str(recv.path), cid)
    assert res.returncode == 0, f"{rt.binary}: {res.stderr.decode()}"
    return recv.result(), recv


SCRIPT = "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; echo hello-from-pty; sleep 100"


@pytest.mark.parametrize("runtime", ["runc", "oci"])
def test_pty_master_is_sent_once_and_shows_the_output(runtime: str, request, bundle, tmp_path: Path) -> None:
    rt: Runtime = request.getfixturevalue(runtime)
    cid = rt.new_id("tty")
    got, recv = create_with_console(rt, terminal_bundle(bundle, ["sh", "-c", SCRIPT]), tmp_path, cid)
    try:
        assert not got.error, got.error
        assert len(got.messages) == 1, f"expected one message, got {got.messages}"
        data, fds = got.messages[0]
        assert len(fds) == 1, f"expected one fd, got {fds}"
        master = fds[0]
        # Only a pty master answers TIOCGPTN (the slave's number).
        ptn = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
        assert ptn >= 0
        assert data, "runc sends the pty's name as the message data"
        rt.run("start", cid, check=True)
        out = read_until(master, b"hello-from-pty")
        assert b"hello-from-pty" in out
        assert b"all-ttys" in out
        assert b"/dev/pts/" in out  # `tty` names the slave inside the container's devpts
        # The pty does what a terminal does: input is echoed and \n becomes \r\n on output.
        assert b"\r\n" in out
        attrs = termios.tcgetattr(master)
        assert attrs is not None
    finally:
        recv.close()


def test_console_message_matches_runc(oci: Runtime, runc: Runtime, bundle, tmp_path: Path) -> None:
    b = terminal_bundle(bundle, ["sleep", "100"])
    shapes = {}
    for rt in (runc, oci):
        got, recv = create_with_console(rt, b, tmp_path, rt.new_id("tty"))
        try:
            shapes[rt.binary] = [(data, len(fds)) for data, fds in got.messages]
        finally:
            recv.close()
    assert shapes[oci.binary] == shapes[runc.binary]


def test_terminal_without_console_socket_fails_cleanly(oci: Runtime, bundle) -> None:
    cid = oci.new_id("tty")
    res = oci.run("create", "-b", str(terminal_bundle(bundle, ["true"])), cid)
    assert not (oci.root / cid).exists()
    assert_clean_error(res, "console-socket")


def test_console_socket_that_does_not_exist_fails_cleanly(oci: Runtime, bundle, tmp_path: Path) -> None:
    cid = oci.new_id("tty")
    missing = tmp_path / "no.sock"
    res = oci.run("create", "-b", str(terminal_bundle(bundle, ["true"])), "--console-socket",
                  str(missing), cid)
    assert not (oci.root / cid).exists()
    assert_clean_error(res, str(missing))


def test_input_written_to_the_master_reaches_the_container(oci: Runtime, bundle, tmp_path: Path) -> None:
    cid = oci.new_id("tty")
    b = terminal_bundle(bundle, ["sh", "-c", "read line; echo got:$line; sleep 100"])
    got, recv = create_with_console(oci, b, tmp_path, cid)
    try:
        master = got.messages[0][1][0]
        oci.run("start", cid, check=True)
        os.write(master, b"typed-text\n")
        assert b"got:typed-text" in read_until(master, b"got:typed-text")
    finally:
        recv.close()
