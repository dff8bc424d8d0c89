"""Unix stream sockets the runtime hands fds over (console socket, seccomp listener,
--pidfd-socket): connect to a caller's path, and send one message with one fd in SCM_RIGHTS,
as runc does. Imported before pivot_root by its users: only _socket, already loaded then."""

from __future__ import annotations

import _socket
import sys

from ociruntime.errors import SyscallError


def connect(path: str, what: str) -> int:
    """A connected socket to path (while the caller's filesystem is still the one we see);
    `what` names the option or field that gave the path. Failures read as runc's ("dial unix
    PATH: connect: ...")."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC, 0)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise SyscallError.from_os(e, f"{what}: dial unix {path}: connect") from None
    return sock.detach()


def send_fd(sock_fd: int, data: bytes, fd: int, what: str) -> None:
    """One sendmsg: `data` and `fd` (SCM_RIGHTS); the socket is closed either way."""
    sock = _socket.socket(fileno=sock_fd)
    try:
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
    except OSError as e:
        raise SyscallError.from_os(e, f"{what}") from None
    finally:
        sock.close()
