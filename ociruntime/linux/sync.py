"""Messages between the runtime (parent) and its children over a SOCK_SEQPACKET socketpair:
one JSON object per packet, so a child's error reaches `create` as a sentence, not an exit code.
The socket calls go through the compiled shim, which create and exec load anyway: `_socket`'s
module init (~0.14 ms) would sit on their path for these three calls.

A child's failure is an "error" message that carries the error's type (SetupError, SyscallError,
CgroupError, HookError), its text, errno, operation and path: the parent raises the same type
(error_from), so it tells a failed hook from a failed mount by class, not by a flag."""

from __future__ import annotations

import errno
import posix

from ociruntime import jsonio
from ociruntime.errors import CHILD_ERRORS, OciError, SetupError
from ociruntime.linux.kernel import shim

MAX_MESSAGE = 1 << 16


def socketpair() -> tuple[int, int]:
    ffi, lib = shim()
    pair = ffi.new("int[2]")
    _call(ffi, lib.oci_socketpair, lib.AF_UNIX, lib.SOCK_SEQPACKET | lib.SOCK_CLOEXEC, 0, pair)
    return pair[0], pair[1]


def _call(ffi, fn, *args) -> int:
    """fn(*args), a shim call, retried when a signal interrupts it and failing as the socket
    module's calls do (PEP 475; ConnectionResetError...). A signal handler that raises (state's
    SIGTERM while the lock is held) still ends the wait: it runs between the tries."""
    while True:
        ret = fn(*args)
        if ret >= 0:
            return ret
        if ffi.errno != errno.EINTR:
            raise OSError(ffi.errno, posix.strerror(ffi.errno))


def send(fd: int, kind: str, fds: list[int] | None = None, **fields: object) -> None:
    """One message; `fds` (SCM_RIGHTS: the v1 hierarchies' `tasks` files, about a dozen) go with
    it, for expect_fds to take."""
    fields["t"] = kind
    data = jsonio.dumps(fields).encode()
    if not fds:
        posix.write(fd, data)
        return
    ffi, lib = shim()
    if len(fds) > lib.OCI_MAX_FDS:
        raise SetupError(f"sync: {len(fds)} fds in one message, more than {lib.OCI_MAX_FDS}")
    _call(ffi, lib.oci_send_fds, fd, data, len(data), ffi.new("int[]", fds), len(fds))


def send_error(fd: int, err: BaseException) -> None:
    """Report a child's failure to the parent, typed (see the module's docstring)."""
    msg = str(err) if isinstance(err, OciError) else f"{type(err).__name__}: {err}"
    kind = type(err).__name__ if type(err).__name__ in CHILD_ERRORS else "SetupError"
    errno = operation = path = None
    if isinstance(err, SetupError):
        errno, operation, path = err.errno, err.operation, err.path
    elif isinstance(err, OSError):
        errno, path = err.errno, err.filename if isinstance(err.filename, str) else None
    send(fd, "error", error=kind, msg=msg, errno=errno, operation=operation, path=path)


def error_from(msg: dict, prefix: str = "") -> SetupError:
    """The error an "error" message reports, as its own type; `prefix` goes before its text."""
    cls = CHILD_ERRORS.get(str(msg.get("error")), SetupError)
    err = cls.__new__(cls)
    errno = msg.get("errno")
    SetupError.__init__(err, prefix + str(msg.get("msg")), errno=errno if isinstance(errno, int) else None,
                        operation=msg.get("operation"), path=msg.get("path"))
    return err


def recv(fd: int) -> dict | None:
    """The next message, or None when the other side has gone (EOF)."""
    try:
        data = posix.read(fd, MAX_MESSAGE)
    except ConnectionResetError:
        return None
    return _decode(data)


def _decode(data: bytes) -> dict | None:
    if not data:
        return None
    msg = jsonio.loads(data)
    if not isinstance(msg, dict):
        raise SetupError(f"sync: unexpected message {data[:80]!r}")
    return msg


def expect_one_of(fd: int, kinds: tuple[str, ...], what: str) -> str:
    """Wait for a message of one of `kinds`; returns which."""
    return str(_expected(recv(fd), kinds, what)["t"])


def expect(fd: int, kind: str, what: str) -> dict:
    """Wait for one message of `kind`; an 'error' message or EOF becomes a SetupError."""
    return _expected(recv(fd), (kind,), what)


def expect_fds(fd: int, kind: str, what: str) -> tuple[dict, list[int]]:
    """expect(), for a message that may carry fds (send's `fds`): it and its fds, close-on-exec."""
    ffi, lib = shim()
    buf = ffi.new_allocator(should_clear_after_alloc=False)("char[]", MAX_MESSAGE)  # as posix.read's
    got, count, flags = ffi.new("int[]", lib.OCI_MAX_FDS), ffi.new("size_t *"), ffi.new("int *")
    try:
        data = ffi.buffer(buf, _call(ffi, lib.oci_recv_fds, fd, buf, MAX_MESSAGE, got, lib.OCI_MAX_FDS,
                                     count, flags))[:]
    except ConnectionResetError:
        data = b""
    fds = [got[i] for i in range(count[0])]
    try:
        if flags[0] & lib.MSG_CTRUNC:
            raise SetupError(f"{what}: more than {lib.OCI_MAX_FDS} fds in one message")
        return _expected(_decode(data), (kind,), what), fds
    except BaseException:
        for n in fds:
            posix.close(n)
        raise


def _expected(msg: dict | None, kinds: tuple[str, ...], what: str) -> dict:
    """msg if it is one of `kinds`; an 'error' message or EOF (None) becomes a SetupError."""
    if msg is None:
        raise SetupError(f"{what}: the other side exited")
    if msg["t"] == "error":
        raise error_from(msg)
    if msg["t"] not in kinds:
        wanted = repr(kinds[0]) if len(kinds) == 1 else f"one of {kinds}"
        raise SetupError(f"{what}: expected {wanted}, got {msg['t']!r}")
    return msg
