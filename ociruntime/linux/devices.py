"""/dev inside the container: the default devices and symlinks the spec lists, and linux.devices."""

from __future__ import annotations

import _stat as stat  # stat.py's built-in core: the frozen stat.py would still be unmarshalled and run
import posix

from ociruntime import lean, spectables
from ociruntime.config import Config, Device
from ociruntime.errors import SetupError
from ociruntime.linux import mountflags as mf
from ociruntime.linux.kernel import kernel
from ociruntime.linux.rootfs import Rootfs, _mount

# config-linux.md "Default Devices": the runtime MUST supply these.
DEFAULT_DEVICES = [
    Device({"type": "c", "path": p, "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0})
    for p, ma, mi in spectables.DEFAULT_DEVICES
]
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def needs_dev_setup(config: Config) -> bool:
    """runc's rule: unless the bundle bind-mounts a /dev of its own, the runtime populates it."""
    return not any(m.destination == "/dev" and m.is_bind() for m in config.mounts)


def populate_dev(root: Rootfs, config: Config, in_userns: bool) -> None:
    wanted = {d.path: (d, False) for d in DEFAULT_DEVICES}
    wanted.update({d.path: (d, True) for d in config.linux.devices})
    for dev, configured in wanted.values():
        create_device(root, dev, in_userns, configured)
    for target, link in spectables.DEFAULT_DEVICE_SYMLINKS:
        root.symlink(target, link)
    if lean.exists("/proc/kcore"):
        root.symlink("/proc/kcore", "/dev/core")
    ptmx = root.open_in_root("dev/ptmx")
    if ptmx < 0:
        root.symlink("pts/ptmx", "/dev/ptmx")
    else:
        posix.close(ptmx)


def create_device(root: Rootfs, dev: Device, in_userns: bool, configured: bool = True) -> None:
    """mknod the node; inside a user namespace mknod is refused, so bind the host's node.
    configured: from linux.devices, where a different file already at the path is an error
    (config-linux.md); a default device replaces whatever the image has there."""
    if in_userns or dev.type not in _TYPES:
        _bind_host_device(root, dev)
        return
    parent, name = dev.path.rsplit("/", 1)
    pfd = root.make_target(parent or "/", True)
    try:
        dirfd = posix.open(f"/proc/self/fd/{pfd}", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    finally:
        posix.close(pfd)
    mode = (dev.file_mode if dev.file_mode is not None else 0o666) | _TYPES[dev.type]
    rdev = posix.makedev(dev.major, dev.minor) if dev.type != "p" else 0
    try:
        _remove_existing(dirfd, name, dev, mode, rdev, configured)
        kernel().mknod(dirfd, name, mode, rdev, f"create device {dev.path} ({dev.type} {dev.major}:{dev.minor})")
        _set_owner_and_mode(dirfd, name, dev, mode, rdev)
    except OSError as e:
        raise SetupError(f"create device {dev.path} ({dev.type} {dev.major}:{dev.minor}): "
                         f"{e.strerror}") from None
    finally:
        posix.close(dirfd)


def _remove_existing(dirfd: int, name: str, dev: Device, mode: int, rdev: int, configured: bool) -> None:
    try:
        st = posix.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    same = stat.S_IFMT(st.st_mode) == stat.S_IFMT(mode) and st.st_rdev == rdev
    if configured and not same:
        raise SetupError(f"linux.devices: {dev.path}: a {_kind(st.st_mode)} is already there, not the "
                         f"requested device ({dev.type} {dev.major}:{dev.minor})")
    posix.unlink(name, dir_fd=dirfd)  # made again: the config's mode and owner, nothing of the image's


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return what
    return "file"


def _set_owner_and_mode(dirfd: int, name: str, dev: Device, mode: int, rdev: int) -> None:
    """Through an O_PATH fd of the node just made, verified to be it: a name can be swapped for
    a symlink meanwhile (chmod would follow it out of the rootfs)."""
    fd = posix.open(name, posix.O_PATH | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=dirfd)
    try:
        st = posix.fstat(fd)
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(mode) or st.st_rdev != rdev:
            raise SetupError(f"create device {dev.path}: replaced while it was being made")
        # mknod honours the umask; the spec's fileMode is the final mode.
        posix.chmod(f"/proc/self/fd/{fd}", mode & 0o7777)
        kernel().chown(f"/proc/self/fd/{fd}", dev.uid or 0, dev.gid or 0, f"create device {dev.path}: chown")
    finally:
        posix.close(fd)


def _bind_host_device(root: Rootfs, dev: Device) -> None:
    if not lean.exists(dev.path):
        raise SetupError(f"device {dev.path}: cannot bind it from the host (it does not exist "
                         "there) and mknod is not allowed in a user namespace")
    fd = root.make_target(dev.path, False)
    try:
        _mount(dev.path, f"/proc/self/fd/{fd}", None, mf.MS_BIND, None,
               f"bind host device {dev.path}")
    finally:
        posix.close(fd)
