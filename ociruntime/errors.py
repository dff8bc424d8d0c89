"""Typed errors. The library raises these; only the CLI turns them into messages and exit codes."""

import posix


class OciError(Exception):
    """Base of every error the runtime reports to its caller (exit status 1, one log line)."""

    exit_code = 1


class UsageError(OciError):
    """Bad command line: unknown flag, missing argument, bad container ID or signal."""


class ConfigError(OciError):
    """config.json (or process.json) cannot be run; `problems` lists every one found."""

    def __init__(self, problems: list[str], source: str = "config.json") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: {problems[0]}" if problems else source)

    def details(self) -> list[str]:
        return [f"{self.source}: {p}" for p in self.problems]


class ContainerNotFound(OciError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} does not exist")


class NotAContainer(OciError):
    """<root>/<id> is a symbolic link, holds files the runtime never makes there (a mistyped
    --root), or another user made it or may write into it: not ours (state.py says why)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} is not a container's state directory: {why} (is --root right?); "
                         "nothing in it was touched")


class ContainerExists(OciError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} already exists")


class InvalidState(OciError):
    """The operation is not allowed in the container's current status (runtime.md)."""


class NotRunning(InvalidState):
    """The container has stopped. The message carries runc's words "container not running",
    which containerd's shim and podman match to tell "already gone" from a real failure."""

    def __init__(self, container_id: str, action: str) -> None:
        super().__init__(f"cannot {action} container {container_id!r}: container not running (it has stopped)")


class SetupError(OciError):
    """A step of building the container failed (a syscall, a hook, a cgroup write).

    When a kernel call failed, `errno` is its error number, `operation` what was attempted
    ("mount /proc", "write 5 to memory.max") and `path` the file it was done to, if any: callers
    decide on the number (ENOENT: already gone), never on the message text."""

    # Class defaults too: a subclass with an __init__ of its own still answers e.errno.
    errno: int | None = None
    operation: str | None = None
    path: str | None = None

    def __init__(self, message: str, *, errno: int | None = None, operation: str | None = None,
                 path: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.operation = operation
        self.path = path


class SyscallError(SetupError):
    """A kernel call failed: "<operation>: <strerror>", the errno kept as a number."""

    def __init__(self, errno: int, operation: str, path: str | None = None, reason: str | None = None) -> None:
        super().__init__(f"{operation}: {reason or posix.strerror(errno)}", errno=errno, operation=operation,
                         path=path)

    @classmethod
    def from_os(cls, err: OSError, operation: str) -> "SyscallError":
        """The OSError of an `os` call, as the error of `operation` (its text kept)."""
        path = err.filename if isinstance(err.filename, str) else None
        return cls(err.errno or 0, operation, path, err.strerror or str(err))


class CgroupError(SetupError):
    pass


class HookError(SetupError):
    pass


# The errors a child process may report to the runtime over the sync socket (linux/sync.py):
# the parent raises the same type, so a failed hook still reads as a HookError there.
CHILD_ERRORS = {cls.__name__: cls for cls in (SetupError, SyscallError, CgroupError, HookError)}


class OptionError(UsageError):
    """A bad option of a call: `option` is its keyword, `reason` may name the keywords in
    `mentions` as {keyword}, `runc` is runc's wording. str() names keywords; details() (what
    the CLI prints) puts runc's words first, then flags: --keyword-with-dashes or flags[keyword]."""

    def __init__(self, option: str, reason: str, *, mentions: tuple = (), runc: str | None = None) -> None:
        self.option, self.reason, self.mentions, self.runc = option, reason, mentions, runc
        self.flags: dict[str, str] = {}
        super().__init__(self._text(str))

    def details(self) -> list[str]:
        text = self._text(lambda o: self.flags.get(o) or "--" + o.replace("_", "-"))
        return [f"{self.runc} ({text})" if self.runc else text]

    def _text(self, name) -> str:
        reason = self.reason
        for other in self.mentions:
            reason = reason.replace("{" + other + "}", name(other))
        return f"{name(self.option)}: {reason}"
