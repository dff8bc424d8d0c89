"""process.terminal: a pty made in the container's devpts, its master sent to --console-socket.

Like runc: one sendmsg on the unix socket, one fd in SCM_RIGHTS, the pty's name as the data."""

from __future__ import annotations

import _socket
import _struct as struct  # built in: struct.py would be read from disk
import fcntl
import posix

from ociruntime import lean
from ociruntime.errors import SetupError, SyscallError
from ociruntime.linux import mountflags as mf
from ociruntime.linux import unixsock
from ociruntime.linux.rootfs import _mount

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413
SIGWINCH = 28


def connect_console_socket(path: str) -> int:
    """Connected by the parent, before any namespace change, so the path is the caller's."""
    return unixsock.connect(path, "console socket")


def open_pty() -> tuple[int, str]:
    """Open the container's /dev/ptmx; returns (master fd, slave path)."""
    try:
        master = posix.open("/dev/ptmx", posix.O_RDWR | posix.O_NOCTTY | posix.O_CLOEXEC)
    except OSError as e:
        raise SyscallError.from_os(e, "open /dev/ptmx") from None
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"))[0]
    return master, f"/dev/pts/{number}"


def send_master(console_fd: int, master: int) -> None:
    unixsock.send_fd(console_fd, b"/dev/ptmx", master, "send pty master to console socket")


def become_terminal(slave_path: str, size: dict | None) -> None:
    """Make the pty slave our controlling terminal and stdio (we are a new session leader)."""
    try:
        slave = posix.open(slave_path, posix.O_RDWR)
    except OSError as e:
        raise SyscallError.from_os(e, f"open {slave_path}") from None
    if size:
        fcntl.ioctl(slave, TIOCSWINSZ, struct.pack("HHHH", size.get("height", 0),
                                                   size.get("width", 0), 0, 0))
    posix.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        posix.dup2(slave, fd)
    if slave > 2:
        posix.close(slave)


def bind_console(slave_path: str) -> None:
    """/dev/console is the container's terminal (after pivot_root: plain container paths)."""
    if not lean.exists("/dev/console"):
        posix.close(posix.open("/dev/console", posix.O_CREAT | posix.O_WRONLY | posix.O_CLOEXEC, 0o600))
    _mount(slave_path, "/dev/console", None, mf.MS_BIND, None, f"bind {slave_path} on /dev/console")


def setup(console_fd: int, size: dict | None, bind: bool = True) -> None:
    """A pty for the process; `bind` also makes it /dev/console (the init, not `exec`)."""
    master, slave = open_pty()
    try:
        if bind:
            bind_console(slave)
        send_master(console_fd, master)
    finally:
        posix.close(master)
    become_terminal(slave, size)


# --- the runtime's side, for a foreground `run` without --console-socket ---------------------
def console_socketpair() -> tuple[int, int]:
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC, 0)
    return a.detach(), b.detach()


def receive_master(sock_fd: int) -> int:
    """The one message the init sends: one fd in SCM_RIGHTS (the data is the pty's name).
    The pty takes our terminal's size at once: `run` receives it before `start`, so the
    container's first `stty size` is right."""
    sock = _socket.socket(fileno=sock_fd)
    try:
        _, ancdata, _, _ = sock.recvmsg(256, _socket.CMSG_SPACE(4))
    finally:
        sock.close()
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
            fd = struct.unpack("i", data[:4])[0]
            posix.set_inheritable(fd, False)
            if posix.isatty(0):
                _copy_window_size(0, fd)
            return fd
    raise SetupError("console: the container sent no pty master")


def relay(master: int, pid: int) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the container's init exits;
    our own terminal, if stdin is one, is put in raw mode meanwhile (the pty does the echo)."""
    import _signal  # not `signal`: it imports enum
    import select

    saved = _make_raw(0)
    if saved is not None:  # resizes of our terminal reach the container's (runc does the same)
        _signal.signal(SIGWINCH, lambda _n, _f: _copy_window_size(0, master))
    pidfd = posix.pidfd_open(pid)
    poller = select.poll()
    poller.register(master, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    poller.register(0, select.POLLIN)
    try:
        if saved is not None:
            _copy_window_size(0, master)
        while True:
            events = dict(poller.poll())
            if master in events and not _pump(master, 1):
                break
            if 0 in events and not _pump(0, master):
                poller.unregister(0)
            if pidfd in events and master not in events:
                break
    finally:
        if saved is not None:
            _signal.signal(SIGWINCH, _signal.SIG_DFL)
        posix.close(pidfd)
        posix.close(master)
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _pump(src: int, dst: int) -> bool:
    try:
        data = posix.read(src, 65536)
    except OSError:  # EIO: the pty's last user has gone
        return False
    if not data:
        return False
    view = memoryview(data)
    while view:
        view = view[posix.write(dst, view):]
    return True


def _make_raw(fd: int) -> list | None:
    if not posix.isatty(fd):
        return None
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return saved


def window_size(fd: int) -> dict | None:
    """The terminal size of fd as a consoleSize object, or None when fd is no terminal."""
    try:
        rows, cols = struct.unpack("HHHH", fcntl.ioctl(fd, TIOCGWINSZ, b"\0" * 8))[:2]
    except OSError:
        return None
    return {"height": rows, "width": cols}


def _copy_window_size(src: int, dst: int) -> None:
    try:
        fcntl.ioctl(dst, TIOCSWINSZ, fcntl.ioctl(src, TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass  # the pty has gone: nothing to resize
