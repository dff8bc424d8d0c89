"""A recording stand-in for ociruntime.linux.kernel.Kernel, so the set-up sequences (mounts,
device nodes, credentials) run without root and a test can read what they asked the kernel.

Calls that need privilege are recorded and succeed (or fail with an errno the test chose);
the unprivileged ones the rootfs code relies on to resolve paths safely -- openat2 with
RESOLVE_IN_ROOT, fstatfs, and a FIFO's mknod -- go to the real kernel, so the code under test
resolves and creates its targets in a real scratch directory, symlinks and all. Each record is
(method, args...) without the `what` text, with every fd and /proc/self/fd/N shown as the
path it stands for (relative to `root` when below it) or as the label of a fake mount fd."""

from __future__ import annotations

import inspect
import os
import stat

from ociruntime.errors import SyscallError
from ociruntime.linux.kernel import Kernel

# Methods whose result is a new fd (a detached mount or a filesystem context): a real fd on
# an empty directory stands for it, so the code under test can fstat and close it.
_FD_RESULTS = {"open_tree", "fsopen", "fsmount"}
# Arguments that hold fds or paths, shown as paths in the record.
_FD_ARGS = {"dfd", "fd", "from_dfd", "to_dfd", "dirfd", "userns_fd"}
_PATH_ARGS = {"target", "path", "new_root", "source"}


class RecordingKernel:
    def __init__(self, root: str, scratch: str) -> None:
        self.root = root.rstrip("/")
        self.scratch = scratch  # an empty directory that fake mount fds are opened on
        self.calls: list[tuple] = []
        self.fail: dict[str, int] = {}  # method -> errno it fails with
        self.labels: dict[int, str] = {}  # fake fd -> "fsmount:tmpfs", ...
        self.magic: dict[int, int] = {}  # fake fd -> the fstatfs magic it claims

    # --- how arguments are shown --------------------------------------------------------
    def _show_fd(self, fd: int) -> str | int:
        if fd in self.labels:
            return self.labels[fd]
        try:
            return self._show_path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return fd

    def _show_path(self, path: str | None) -> str | None:
        if path and path.startswith("/proc/self/fd/"):
            return self._show_fd(int(path.rsplit("/", 1)[1]))
        if path and self.root and (path == self.root or path.startswith(self.root + "/")):
            return "<root>" + path[len(self.root):]
        return path

    def _record(self, name: str, bound: inspect.BoundArguments) -> tuple:
        shown = []
        for arg, value in bound.arguments.items():
            if arg in ("self", "what"):
                continue
            if arg in _FD_ARGS and isinstance(value, int) and value > 0:
                value = self._show_fd(value)
            elif arg in _PATH_ARGS and isinstance(value, str):
                value = self._show_path(value)
            shown.append(value)
        rec = (name, *shown)
        self.calls.append(rec)
        return rec

    def _fake_fd(self, label: str) -> int:
        fd = os.open(self.scratch, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.labels[fd] = label
        return fd

    def named(self, *names: str) -> list[tuple]:
        """The records of these methods, in order."""
        return [c for c in self.calls if c[0] in names]

    # --- the calls that are more than a record -----------------------------------------
    def openat2(self, dfd, path, flags, mode, resolve, what):
        return Kernel().openat2(dfd, path, flags, mode, resolve, what)

    def fstatfs_type(self, fd, what):
        if fd in self.magic:
            return self.magic[fd]
        return Kernel().fstatfs_type(fd, what)

    def mknod(self, dirfd, name, mode, rdev, what):
        self._call("mknod", dirfd, name, mode, rdev, what)
        if stat.S_ISFIFO(mode):
            os.mknod(name, mode, dir_fd=dirfd)
        else:
            # Only root can make a device node: a regular file stands in for it, which is
            # what a racer swapping the node would leave (the runtime must refuse it).
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode & 0o777, dir_fd=dirfd))

    def fsmount(self, fd, flags, attr_flags, what):
        self._call("fsmount", fd, flags, attr_flags, what)
        label = f"fsmount:{self.labels.get(fd, '?').split(':', 1)[-1]}"
        return self._fake_fd(label)

    def fsopen(self, fstype, flags, what):
        self._call("fsopen", fstype, flags, what)
        return self._fake_fd(f"fsopen:{fstype}")

    def open_tree(self, dfd, path, flags, what):
        rec = self._call("open_tree", dfd, path, flags, what)
        return self._fake_fd(f"open_tree:{rec[1]}")

    def _call(self, name: str, *args, **kw):
        bound = inspect.signature(getattr(Kernel, name)).bind(None, *args, **kw)
        rec = self._record(name, bound)
        if name in self.fail:
            raise SyscallError(self.fail[name], bound.arguments.get("what", name))
        return rec

    def __getattr__(self, name: str):
        if name.startswith("_") or not callable(getattr(Kernel, name, None)):
            raise AttributeError(name)

        def call(*args, **kw):
            self._call(name, *args, **kw)
            return 0

        return call
