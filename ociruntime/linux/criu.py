"""Running criu(8) through its command line.

Why the command line and not `criu swrk` (RPC over a socketpair): each option is visible in
the argument list (logged with --debug), nothing has to be generated from criu's .proto at build
time, and criu's failures are lines in its log file (`-o`), which we read back and report as one
line naming the log. What the command line lacks is RPC-only: sending a new pty master back
(`orphan_pts_master`) and per-step notifications, so a container with a terminal (its pty
master held outside the container) is not handled.

criu runs as a child that first gets its file descriptors in place (only the ones criu must
inherit, at the numbers its arguments name) and optionally runs `setup` (a private mount
namespace for restore); a failure there or in execve reaches the parent over a close-on-exec
pipe. criu's own stdout/stderr go to a memfd that is read if criu fails without a log line."""

from __future__ import annotations

import os

from ociruntime import signals
from ociruntime.errors import OciError, OptionError

LOG_TAIL_BYTES = 256 << 10  # an error is near the end; -v4 logs can be megabytes
_FD_BASE = 200  # where fds are parked in the child before being put at their numbers


class CriuError(OciError):
    """criu could not be run, or it ran and failed (the message names its log)."""


class CriuNotFound(OptionError, CriuError):
    """No criu executable where the criu option (runc's --criu) or $PATH says."""

    def __init__(self, reason: str) -> None:
        super().__init__("criu", reason + " (install criu, or give its path as {criu})", mentions=("criu",))


def find(criu: str | None) -> str:
    """The criu executable: the criu option's path as given, else `criu` in $PATH (runc's default)."""
    name = criu or "criu"
    if "/" in name:
        if not os.access(name, os.X_OK) or os.path.isdir(name):
            reason = "no such file" if not os.path.exists(name) else "not an executable file"
            raise CriuNotFound(f"{name}: {reason}")
        return name
    for directory in os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        path = os.path.join(directory or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    raise CriuNotFound("executable file not found in $PATH")


def run(binary: str, args: list[str], work_dir: str, log_name: str, *,
        fds: dict[int, int] | None = None, setup=None) -> None:
    """Run `criu ARGS -o LOG_NAME -W WORK_DIR` and wait; CriuError on failure.

    fds: {number in criu: our fd}, e.g. stdio the restored process inherits, a netns fd for
    --inherit-fd, a --status-fd. setup: called in the child before execve (may raise OciError)."""
    argv = [binary, *args, "-W", work_dir, "-o", log_name, "-v4"]
    from ociruntime import log

    log.debug("running " + " ".join(argv))
    out = os.memfd_create("criu-output", os.MFD_CLOEXEC)
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    try:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _child(parent, argv, out, wfd, fds or {}, setup)
        os.close(wfd)
        wfd = -1
        failure = _read_all(rfd)
        status = _wait(pid)
        if failure:
            raise CriuError(f"criu {args[0]}: {failure}")
        if status != 0:
            raise CriuError(f"criu {args[0]} failed ({_exit_text(status)}): "
                            f"{first_error(os.path.join(work_dir, log_name), out)}")
    finally:
        for fd in (out, rfd, wfd):
            if fd >= 0:
                os.close(fd)


def _child(parent: int, argv: list[str], out: int, err_pipe: int, fds: dict[int, int], setup) -> None:
    """Never returns: execve criu, or report why not over err_pipe and exit 127."""
    try:
        from ociruntime.spawn import child_after_fork

        child_after_fork(parent)  # criu dies with us: no half-done dump or restore goes on alone
        if setup is not None:
            setup()
        parked = {target: _park(src, i) for i, (target, src) in enumerate(fds.items())}
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        for target, src in ((0, null), (1, out), (2, out)):
            if target not in parked:
                os.dup2(src, target, inheritable=True)
        for target, src in parked.items():
            os.dup2(src, target, inheritable=True)
        signals.restore_defaults()
        os.execv(argv[0], argv)
    except BaseException as e:  # anything here must reach the parent as text
        text = f"{argv[0]}: {e.strerror}" if isinstance(e, OSError) and e.strerror else str(e)
        try:
            os.write(err_pipe, text.encode(errors="replace")[:4000] or b"failed before execve")
        finally:
            os._exit(127)


def _park(fd: int, index: int) -> int:
    """A close-on-exec copy of fd above every number criu will use, so that putting one fd
    at its number never overwrites another that is still to be moved."""
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _FD_BASE + index)


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace").strip()


def _wait(pid: int) -> int:
    """criu's wait status. Interrupted (delete --force's SIGTERM, ^C): criu is killed first,
    so no dump or restore runs on after this command has given up."""
    try:
        return os.waitpid(pid, 0)[1]
    except BaseException:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        raise


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def first_error(log_path: str, output_fd: int) -> str:
    """The first `Error (file:line): ...` line of criu's log (later ones are usually its
    consequences), without the timestamp, and where the log is; else criu's own output."""
    line = _first_error_line(_tail(log_path))
    if line:
        return f"{line} (log: {log_path})"
    os.lseek(output_fd, 0, os.SEEK_SET)
    output = [ln.strip() for ln in _read_all(output_fd).splitlines() if ln.strip()]
    if output:
        return output[-1] + (f" (log: {log_path})" if os.path.exists(log_path) else "")
    return f"no error message (log: {log_path})"


def _tail(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return ""
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - LOG_TAIL_BYTES), os.SEEK_SET)
        return _read_all(fd)
    finally:
        os.close(fd)


def _first_error_line(text: str) -> str:
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("(") and ") " in line:
            line = line.split(") ", 1)[1].lstrip()  # "(00.012345) Error (...)": the timestamp goes
            head, sep, rest = line.partition(": ")
            if sep and head.isdigit():
                line = rest  # "(00.012345)      7: Error (...)": a restored task's pid goes too
        if line.startswith("Error (") or line.startswith("Error:"):
            return line
    return ""
