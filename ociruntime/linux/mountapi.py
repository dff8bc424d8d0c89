"""The new mount API (fsopen/fsmount/open_tree/move_mount/mount_setattr) and fd verification.

A mount made this way is known by its fd from the moment it exists until it is attached to a
target that is also an fd: nothing is resolved by path in between, so a racer in a shared volume
cannot redirect it, and what was mounted can be checked (fstatfs magic) through the same fd.
Used where a redirected mount is a host escape: procfs/sysfs/cgroupfs, masks, read-only paths."""

from __future__ import annotations

import _stat as stat  # stat.py's built-in core: the frozen stat.py would still be unmarshalled and run
import posix

from ociruntime.errors import SetupError
from ociruntime.linux import mountflags as mf
from ociruntime.linux.kernel import kernel

FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = posix.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

# statfs(2) f_type of the filesystems whose mounts are verified.
MAGIC = {
    "proc": 0x9FA0, "sysfs": 0x62656572, "cgroup": 0x27E0EB, "cgroup2": 0x63677270,
    "tmpfs": 0x01021994, "mqueue": 0x19800202,
}
# mount(2) flags of the per-mount kind, as mount attributes (MS_RELATIME is the default, 0).
_ATTRS = ((mf.MS_RDONLY, mf.MOUNT_ATTR_RDONLY), (mf.MS_NOSUID, mf.MOUNT_ATTR_NOSUID),
          (mf.MS_NODEV, mf.MOUNT_ATTR_NODEV), (mf.MS_NOEXEC, mf.MOUNT_ATTR_NOEXEC),
          (mf.MS_NOATIME, mf.MOUNT_ATTR_NOATIME), (mf.MS_STRICTATIME, mf.MOUNT_ATTR_STRICTATIME),
          (mf.MS_NODIRATIME, mf.MOUNT_ATTR_NODIRATIME),
          (mf.MS_NOSYMFOLLOW, mf.MOUNT_ATTR_NOSYMFOLLOW))
# The on/off attributes (the atime mode is one field, MOUNT_ATTR__ATIME).
PER_MOUNT_ATTRS = (mf.MOUNT_ATTR_RDONLY | mf.MOUNT_ATTR_NOSUID | mf.MOUNT_ATTR_NODEV | mf.MOUNT_ATTR_NOEXEC
                   | mf.MOUNT_ATTR_NODIRATIME | mf.MOUNT_ATTR_NOSYMFOLLOW)
READONLY_ATTRS = mf.MOUNT_ATTR_RDONLY | mf.MOUNT_ATTR_NOSUID | mf.MOUNT_ATTR_NODEV | mf.MOUNT_ATTR_NOEXEC


def mount_attrs(flags: int) -> int:
    return sum(attr for flag, attr in _ATTRS if flags & flag)


def fs_type(fd: int) -> int:
    return kernel().fstatfs_type(fd, "fstatfs")


def new_mount(fstype: str, source: str, flags: int, data: str, what: str) -> int:
    """A detached mount of a new `fstype` superblock; its fd. `data` is mount(2)'s option
    string (k=v or bare flags, comma-separated); `flags` its per-mount MS_* flags."""
    k = kernel()
    fsfd = k.fsopen(fstype, FSOPEN_CLOEXEC, f"{what}: fsopen {fstype}")
    try:
        k.fsconfig(fsfd, FSCONFIG_SET_STRING, "source", source, 0, f"{what}: source {source}")
        for opt in filter(None, data.split(",")):
            key, eq, value = opt.partition("=")
            if eq:
                k.fsconfig(fsfd, FSCONFIG_SET_STRING, key, value, 0, f"{what}: option {opt!r}")
            else:
                k.fsconfig(fsfd, FSCONFIG_SET_FLAG, key, None, 0, f"{what}: option {opt!r}")
        k.fsconfig(fsfd, FSCONFIG_CMD_CREATE, None, None, 0, what)
        return k.fsmount(fsfd, FSMOUNT_CLOEXEC, mount_attrs(flags), what)
    finally:
        posix.close(fsfd)


def verify_fs(fd: int, fstype: str, what: str) -> None:
    """The mount behind fd is of `fstype`, or SetupError: an attacker's stand-in is never used."""
    found = fs_type(fd)
    if found != MAGIC[fstype]:
        raise SetupError(f"{what}: expected a {fstype} filesystem, found magic {found:#x}")


def clone_tree(fd: int, recursive: bool, what: str) -> int:
    """A detached copy (bind) of the mount tree at fd."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    return kernel().open_tree(fd, "", flags, f"{what}: open_tree")


def set_attrs(fd: int, attr_set: int, attr_clear: int, recursive: bool, what: str,
              propagation: int = 0) -> None:
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    kernel().mount_setattr(fd, "", flags, attr_set, attr_clear, propagation, f"{what}: mount_setattr")


def attach(mount_fd: int, target_fd: int, what: str) -> None:
    """Attach a detached mount at the (already resolved and verified) target."""
    kernel().move_mount(mount_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
                        f"{what}: move_mount")


def attach_detached(mount_fd: int, target_fd: int, what: str, attr_set: int = 0,
                    recursive: bool = False) -> None:
    """Set attr_set (e.g. READONLY_ATTRS) on the detached mount, then attach it at the target:
    nothing of it is reachable before it has its attributes. Consumes mount_fd."""
    try:
        if attr_set:
            set_attrs(mount_fd, attr_set, 0, recursive, what)
        attach(mount_fd, target_fd, what)
    finally:
        posix.close(mount_fd)


def verify_char_device(fd: int, major: int, minor: int, what: str) -> None:
    st = posix.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or (posix.major(st.st_rdev), posix.minor(st.st_rdev)) != (major, minor):
        raise SetupError(f"{what}: not the character device {major}:{minor}")
