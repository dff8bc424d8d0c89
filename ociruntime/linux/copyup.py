"""tmpcopyup's copy: what a new tmpfs starts with, copied from the directory it covers
(rootfs.Rootfs._mount_tmpfs_copy_up). Its own module, loaded by the child only for a config
with a tmpcopyup mount (linux/init.py, load_what_the_namespaces_need): ~7 kB of bytecode the
child of every other config does not load on create's path."""

from __future__ import annotations

import _stat as stat  # stat.py's built-in core: the frozen stat.py would still be unmarshalled and run
import errno
import posix

from ociruntime.errors import SyscallError


def copy_tree(src_at: int, dst_at: int, what: str, keep_mode: bool) -> None:
    """Copy the directory at fd src_at into the (empty) directory at fd dst_at: modes, owners,
    times, xattrs, symlinks as symlinks, device nodes and FIFOs as nodes. Every file is opened
    with O_NOFOLLOW below a directory fd, so the image cannot redirect the copy. keep_mode: the
    root takes the covered directory's mode (whatever mode= said, as runc), not its owner."""
    src = posix.open(".", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC, dir_fd=src_at)
    dst = posix.open(".", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC, dir_fd=dst_at)
    try:
        _copy_dir(src, dst, what)
        if keep_mode:
            posix.fchmod(dst, stat.S_IMODE(posix.fstat(src).st_mode))
    except OSError as e:
        raise SyscallError.from_os(e, f"{what}: copy {e.filename or ''}") from None
    finally:
        posix.close(src)
        posix.close(dst)


_NOFOLLOW = posix.O_NOFOLLOW | posix.O_CLOEXEC


def _copy_dir(src: int, dst: int, what: str) -> None:
    for name in posix.listdir(src):
        st = posix.stat(name, dir_fd=src, follow_symlinks=False)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            posix.mkdir(name, 0o700, dir_fd=dst)
            sfd = posix.open(name, posix.O_RDONLY | posix.O_DIRECTORY | _NOFOLLOW, dir_fd=src)
            dfd = posix.open(name, posix.O_RDONLY | posix.O_DIRECTORY | _NOFOLLOW, dir_fd=dst)
            try:
                _copy_dir(sfd, dfd, what)
                _copy_attrs(st, sfd, dfd, None)
            finally:
                posix.close(sfd)
                posix.close(dfd)
        elif kind == stat.S_IFREG:
            _copy_file(src, dst, name, st)
        elif kind == stat.S_IFLNK:
            posix.symlink(posix.readlink(name, dir_fd=src), name, dir_fd=dst)
            posix.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            posix.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
            _copy_attrs(st, None, dst, name)
        # sockets are not copied: nothing can be listening on a copy


def _copy_file(src: int, dst: int, name: str, st: posix.stat_result) -> None:
    sfd = posix.open(name, posix.O_RDONLY | posix.O_NONBLOCK | _NOFOLLOW, dir_fd=src)
    try:
        if not stat.S_ISREG(posix.fstat(sfd).st_mode):  # swapped since the stat: skip it
            return
        dfd = posix.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | _NOFOLLOW, 0o600, dir_fd=dst)
        try:
            remaining = st.st_size
            while remaining > 0:
                sent = posix.sendfile(dfd, sfd, None, min(remaining, 1 << 30))
                if sent == 0:
                    break
                remaining -= sent
            _copy_attrs(st, sfd, dfd, None)
        finally:
            posix.close(dfd)
    finally:
        posix.close(sfd)


def _copy_xattrs(src_fd: int, dst: int) -> None:
    """Every xattr the destination can hold: tmpfs before Linux 6.6 has no user.* xattrs, and a
    filesystem without xattrs at all has nothing to copy (ENOTSUP is not an error here)."""
    try:
        keys = posix.listxattr(src_fd)
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            return
        raise
    for key in keys:
        try:
            posix.setxattr(dst, key, posix.getxattr(src_fd, key))
        except OSError as e:
            if e.errno != errno.EOPNOTSUPP:
                raise


def _copy_attrs(st: posix.stat_result, src_fd: int | None, dst: int, name: str | None) -> None:
    """Owner, mode, times and (from an open source fd) xattrs onto dst (an fd, or name at it)."""
    if src_fd is not None:
        _copy_xattrs(src_fd, dst)
    if name is None:
        posix.fchown(dst, st.st_uid, st.st_gid)
        posix.fchmod(dst, stat.S_IMODE(st.st_mode))
        posix.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        posix.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        posix.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst)
        posix.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst)
