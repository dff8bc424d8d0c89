"""Writing procfs files (sysctls, LSM attributes) through a verified procfs fd, never a path:
an image can put anything at /proc (CVE-2019-16884: a fake /proc/self/attr; CVE-2019-19921)."""

from __future__ import annotations

import posix

from ociruntime.errors import SetupError
from ociruntime.linux import mountapi
from ociruntime.linux import mountflags as mf
from ociruntime.linux.kernel import kernel

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08


class Procfs:
    """`with Procfs(fd) as proc`: the verified procfs fd given, or (fd < 0) a new procfs of our
    own pid namespace, detached (never attached anywhere) and closed at the end."""

    __slots__ = ("fd", "owned")

    def __init__(self, fd: int) -> None:
        self.owned = fd < 0
        self.fd = fd

    def __enter__(self) -> Procfs:
        if self.owned:
            self.fd = mountapi.new_mount("proc", "proc", mf.MS_NOSUID | mf.MS_NODEV | mf.MS_NOEXEC, "",
                                         "mount a private procfs")
        mountapi.verify_fs(self.fd, "proc", "procfs")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned and self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1


def write_file(proc_fd: int, rel: str, data: bytes) -> None:
    """One write(2) to a file below the procfs at proc_fd, no symlink followed; OSError."""
    try:
        fd = kernel().openat2(proc_fd, rel, posix.O_WRONLY | posix.O_CLOEXEC, 0,
                              RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, f"open {rel}")
    except SetupError as e:
        raise OSError(e.errno, posix.strerror(e.errno or 0)) from None
    try:
        if mountapi.fs_type(fd) != mountapi.MAGIC["proc"]:
            raise OSError(22, "not a procfs file")
        posix.write(fd, data)
    finally:
        posix.close(fd)
