"""/dev inside the container: the default devices and symlinks the spec lists, and linux.devices."""

from __future__ import annotations

import os
import stat

from ociruntime.config import Config, Device
from ociruntime.errors import SetupError
from ociruntime.linux import mountflags as mf
from ociruntime.linux.rootfs import Rootfs, _mount

# config-linux.md "Default Devices": the runtime MUST supply these.
DEFAULT_DEVICES = [
    Device({"type": "c", "path": p, "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0})
    for p, ma, mi in (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                      ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))
]
DEFAULT_SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))
_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def needs_dev_setup(config: Config) -> bool:
    """runc's rule: unless the bundle bind-mounts a /dev of its own, the runtime populates it."""
    return not any(m.destination == "/dev" and m.is_bind() for m in config.mounts)


def populate_dev(root: Rootfs, config: Config, in_userns: bool) -> None:
    wanted = {d.path: d for d in DEFAULT_DEVICES}
    wanted.update({d.path: d for d in config.linux.devices})
    for dev in wanted.values():
        create_device(root, dev, in_userns)
    for target, link in DEFAULT_SYMLINKS:
        root.symlink(target, link)
    if os.path.exists("/proc/kcore"):
        root.symlink("/proc/kcore", "/dev/core")
    ptmx = root.open_in_root("dev/ptmx")
    if ptmx < 0:
        root.symlink("pts/ptmx", "/dev/ptmx")
    else:
        os.close(ptmx)


def create_device(root: Rootfs, dev: Device, in_userns: bool) -> None:
    """mknod the node; inside a user namespace mknod is refused, so bind the host's node."""
    if in_userns or dev.type not in _TYPES:
        _bind_host_device(root, dev)
        return
    parent, name = dev.path.rsplit("/", 1)
    pfd = root.make_target(parent or "/", True)
    try:
        dirfd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(pfd)
    try:
        try:
            os.unlink(name, dir_fd=dirfd)
        except FileNotFoundError:
            pass
        mode = (dev.file_mode if dev.file_mode is not None else 0o666) | _TYPES[dev.type]
        os.mknod(name, mode, os.makedev(dev.major, dev.minor), dir_fd=dirfd)
        # mknod honours the umask; the spec's fileMode is the final mode.
        os.chmod(name, mode & 0o7777, dir_fd=dirfd)
        os.chown(name, dev.uid or 0, dev.gid or 0, dir_fd=dirfd)
    except OSError as e:
        raise SetupError(f"create device {dev.path} ({dev.type} {dev.major}:{dev.minor}): "
                         f"{e.strerror}") from None
    finally:
        os.close(dirfd)


def _bind_host_device(root: Rootfs, dev: Device) -> None:
    if not os.path.exists(dev.path):
        raise SetupError(f"device {dev.path}: cannot bind it from the host (it does not exist "
                         "there) and mknod is not allowed in a user namespace")
    fd = root.make_target(dev.path, False)
    try:
        _mount(dev.path, f"/proc/self/fd/{fd}", None, mf.MS_BIND, None,
               f"bind host device {dev.path}")
    finally:
        os.close(fd)
