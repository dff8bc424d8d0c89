"""The container's root filesystem: propagation, mounts, pivot_root, masked and read-only paths.

Every mount target inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT), so a symlink
planted in the image (`/proc -> /host/etc`) resolves inside the rootfs and can never redirect a
mount onto the host; the mount is then made on /proc/self/fd/N of the resolved O_PATH fd, so
nothing can swap the path between the check and the mount (the CVE-2021-30465 class)."""

from __future__ import annotations

import os
import stat

from ociruntime.config import Config, Mount
from ociruntime.errors import SetupError
from ociruntime.linux import mountflags as mf
from ociruntime.linux.sys import check, ffi, lib

O_PATH = 0o10000000
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
# Directory names under the container's /sys/fs/cgroup: "" is the unified (cgroup2) hierarchy.
_CGROUP_DIR_NAMES = {"": "unified", "name=systemd": "systemd"}


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None,
           what: str) -> None:
    src = source.encode() if source is not None else ffi.NULL
    fst = fstype.encode() if fstype is not None else ffi.NULL
    dat = data.encode() if data else ffi.NULL
    check(lib.oci_mount(src, target.encode(), fst, flags, dat), what)


class Rootfs:
    """Mount operations relative to one rootfs directory (before pivot_root)."""

    def __init__(self, path: str, in_userns: bool) -> None:
        self.path = path
        self.in_userns = in_userns
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    # --- safe resolution ----------------------------------------------------------------
    def open_in_root(self, rel: str) -> int:
        """O_PATH fd of rel resolved as if the rootfs were '/', or -1 if it does not exist."""
        fd = lib.oci_openat2(self.fd, rel.encode(), O_PATH | os.O_CLOEXEC, 0,
                             RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        if fd < 0:
            if ffi.errno == 2:  # ENOENT
                return -1
            raise SetupError(f"resolve {rel} in rootfs {self.path}: {os.strerror(ffi.errno)}")
        return fd

    def make_target(self, dest: str, is_dir: bool) -> int:
        """Create dest (and parents) inside the rootfs; returns an O_PATH fd on it.

        Missing components are created where they resolve *in the rootfs*: a symlink in the
        image is followed as if the rootfs were / (an absolute target restarts at the rootfs),
        so `/data -> /host/dir` creates rootfs/host/dir, never the host's directory."""
        fd = self.open_in_root(dest.lstrip("/") or ".")
        if fd >= 0:
            return fd
        resolved = self._create_in_root(dest, is_dir)
        fd = self.open_in_root(resolved or ".")
        if fd < 0:
            raise SetupError(f"create mount point {dest} in rootfs: it vanished while being made")
        return fd

    def _create_in_root(self, dest: str, is_dir: bool) -> str:
        """Walk dest component by component from the rootfs, following symlinks in-root and
        creating what is missing; returns the resolved path relative to the rootfs."""
        todo = [p for p in dest.split("/") if p and p != "."][::-1]  # a stack: next is last
        cur: list[str] = []
        hops = 0
        while todo:
            name = todo.pop()
            if name == "..":
                cur = cur[:-1]
                continue
            path = "/".join([*cur, name])
            try:
                st = os.stat(path, dir_fd=self.fd, follow_symlinks=False)
            except FileNotFoundError:
                self._create(path, is_dir or bool(todo), dest)
                cur.append(name)
                continue
            except OSError as e:
                raise SetupError(f"create mount point {dest}: {path}: {e.strerror}") from None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > 40:
                    raise SetupError(f"create mount point {dest}: too many levels of symbolic links")
                target = os.readlink(path, dir_fd=self.fd)
                if target.startswith("/"):
                    cur = []
                todo.extend(p for p in target.split("/")[::-1] if p and p != ".")
                continue
            cur.append(name)
        return "/".join(cur)

    def _create(self, path: str, is_dir: bool, dest: str) -> None:
        try:
            if is_dir:
                os.mkdir(path, 0o755, dir_fd=self.fd)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644,
                                 dir_fd=self.fd))
        except FileExistsError:
            pass
        except OSError as e:
            raise SetupError(f"create mount point {dest}: {path}: {e.strerror}") from None

    # --- mounts -------------------------------------------------------------------------
    def mount(self, m: Mount, bundle: str, cgroup_paths: dict[str, str] | None) -> None:
        dest = m.destination if m.destination.startswith("/") else "/" + m.destination
        opts = mf.parse_options(m.options)
        if m.type == "cgroup" and not m.is_bind():
            self._mount_cgroup_v1_view(dest, opts, cgroup_paths)
            return
        if opts.flags & mf.MS_REMOUNT:
            self._remount(dest, opts)
        elif m.is_bind():
            self._bind(m, dest, opts, bundle)
        else:
            fd = self.make_target(dest, True)
            try:
                target = f"/proc/self/fd/{fd}"
                _mount(m.source or m.type, target, m.type, opts.flags, opts.data,
                       f"mount {m.type} {m.source or m.type} on {dest}")
            finally:
                os.close(fd)
        if opts.recursive:
            self._set_recursive(dest, opts)
        self._propagate(dest, opts)

    def _remount(self, dest: str, opts: mf.MountOptions) -> None:
        """The `remount` option changes the mount already at dest instead of stacking one."""
        fd = self.open_in_root(dest)
        if fd < 0:
            raise SetupError(f"remount {dest}: nothing is mounted there")
        try:
            _mount(None, f"/proc/self/fd/{fd}", None, opts.flags, opts.data, f"remount {dest}")
        finally:
            os.close(fd)

    def _set_recursive(self, dest: str, opts: mf.MountOptions) -> None:
        fd = self.open_in_root(dest)
        try:
            check(lib.oci_mount_setattr(fd, b"", AT_EMPTY_PATH | AT_RECURSIVE, opts.rec_set,
                                        opts.rec_clear, 0),
                  f"set recursive mount attributes on {dest}")
        finally:
            os.close(fd)

    def _bind(self, m: Mount, dest: str, opts: mf.MountOptions, bundle: str) -> None:
        source = m.source if m.source.startswith("/") else os.path.join(bundle, m.source)
        try:
            is_dir = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError as e:
            raise SetupError(f"bind mount {source} on {dest}: source: {e.strerror}") from None
        fd = self.make_target(dest, is_dir)
        try:
            target = f"/proc/self/fd/{fd}"
            _mount(source, target, None, mf.MS_BIND | (opts.flags & mf.MS_REC), None,
                   f"bind mount {source} on {dest}")
        finally:
            os.close(fd)
        self.remount_bind(dest, opts.flags)

    def remount_bind(self, dest: str, flags: int) -> None:
        """Bind mounts take their flags only on a second MS_REMOUNT call."""
        want = flags & mf.REMOUNT_FLAGS
        if not want:
            return
        fd = self.open_in_root(dest)
        if fd < 0:
            raise SetupError(f"remount {dest}: vanished")
        try:
            target = f"/proc/self/fd/{fd}"
            if self.in_userns:
                want |= locked_flags(target)
            _mount(None, target, None, mf.MS_REMOUNT | mf.MS_BIND | want, None,
                   f"remount {dest} with {describe_flags(want)}")
        finally:
            os.close(fd)

    def _propagate(self, dest: str, opts: mf.MountOptions) -> None:
        for prop in opts.propagation:
            fd = self.open_in_root(dest)
            try:
                _mount(None, f"/proc/self/fd/{fd}", None, prop, None, f"set propagation of {dest}")
            finally:
                os.close(fd)

    def _mount_cgroup_v1_view(self, dest: str, opts: mf.MountOptions,
                              cgroup_paths: dict[str, str] | None) -> None:
        """`type: cgroup` mounts: a tmpfs with the container's own cgroup directories bound in
        (cgroup v1); on a cgroup2-only host, a cgroup2 mount."""
        fd = self.make_target(dest, True)
        try:
            target = f"/proc/self/fd/{fd}"
            if not cgroup_paths:
                _mount("cgroup2", target, "cgroup2", opts.flags & ~mf.MS_REMOUNT, None,
                       f"mount cgroup2 on {dest}")
                return
            _mount("tmpfs", target, "tmpfs", mf.MS_NOSUID | mf.MS_NODEV | mf.MS_NOEXEC,
                   "mode=755", f"mount tmpfs on {dest}")
        finally:
            os.close(fd)
        for name, host_dir in sorted(cgroup_paths.items()):
            sub = f"{dest}/{_CGROUP_DIR_NAMES.get(name, name)}"
            sfd = self.make_target(sub, True)
            try:
                _mount(host_dir, f"/proc/self/fd/{sfd}", None, mf.MS_BIND | mf.MS_REC, None,
                       f"bind cgroup {host_dir} on {sub}")
            finally:
                os.close(sfd)
            self.remount_bind(sub, opts.flags | mf.MS_NOSUID | mf.MS_NODEV | mf.MS_NOEXEC)
        if opts.flags & mf.MS_RDONLY:
            self.remount_bind(dest, opts.flags)

    def symlink(self, target: str, link: str) -> None:
        """Create link -> target inside the rootfs (the link's parent resolved in-root)."""
        parent, name = link.rsplit("/", 1)
        pfd = self.open_in_root(parent or ".")
        if pfd < 0:
            raise SetupError(f"symlink {link}: {parent} does not exist")
        try:
            dirfd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.symlink(target, name, dir_fd=dirfd)
            except FileExistsError:
                pass
            finally:
                os.close(dirfd)
        except OSError as e:
            raise SetupError(f"symlink {link} -> {target}: {e.strerror}") from None
        finally:
            os.close(pfd)

    def close(self) -> None:
        os.close(self.fd)


def locked_flags(path: str) -> int:
    """Flags inherited mounts carry that a user namespace may not clear (remount would fail)."""
    f_flag = os.statvfs(path).f_flag
    return sum(flag for bit, flag in mf.ST_LOCKED.items() if f_flag & bit)


def describe_flags(flags: int) -> str:
    names = [n for n, (f, on) in mf.FLAG_OPTIONS.items() if on and f & flags == f and
             f & mf.REMOUNT_FLAGS]
    return ",".join(names) or hex(flags)


# --- whole-rootfs steps, in the order init runs them ---------------------------------------
def prepare_root(config: Config) -> None:
    """Stop our mounts from reaching the host, then make the rootfs a mount point of its own."""
    prop = mf.PROPAGATION_OPTIONS.get(config.linux.rootfs_propagation, mf.MS_SLAVE | mf.MS_REC)
    _mount(None, "/", None, prop, None, "set propagation of /")
    _make_parent_private(config.root_path)
    _mount(config.root_path, config.root_path, None, mf.MS_BIND | mf.MS_REC, None,
           f"bind mount rootfs {config.root_path} on itself")


def _make_parent_private(path: str) -> None:
    """pivot_root(2) fails with EINVAL if the parent mount of new_root is shared."""
    mountpoint, shared = _parent_mount(path)
    if shared:
        _mount(None, mountpoint, None, mf.MS_PRIVATE, None,
               f"make parent mount {mountpoint} of the rootfs private")


def _parent_mount(path: str) -> tuple[str, bool]:
    """The longest mount point containing path, and whether it is shared (one mountinfo read)."""
    best, best_shared = "/", False
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split(b" - ", 1)[0].split(b" ")
            mp = fields[4].decode()
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) >= len(best):
                best, best_shared = mp, any(x.startswith(b"shared:") for x in fields[6:])
    return best, best_shared


def pivot_root(rootfs: str) -> None:
    """pivot_root(".", ".") then detach the old root stacked beneath (see pivot_root(2))."""
    old_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        check(lib.oci_pivot_root(b".", b"."), f"pivot_root into {rootfs}")
        os.fchdir(old_root)
        # The old root must not propagate its unmount to the host.
        _mount(None, ".", None, mf.MS_SLAVE | mf.MS_REC, None, "make old root a slave")
        check(lib.oci_umount2(b".", mf.MNT_DETACH), "detach old root")
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs over / and chroot (for ramdisk roots where pivot fails)."""
    os.chdir(rootfs)
    _mount(rootfs, "/", None, mf.MS_MOVE, None, f"move rootfs {rootfs} to /")
    os.chroot(".")
    os.chdir("/")


def mask_paths(paths: list[str]) -> None:
    """After pivot_root: files get /dev/null bound over them, directories an empty r/o tmpfs."""
    for path in paths:
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise SetupError(f"mask {path}: {e.strerror}") from None
        if is_dir:
            _mount("tmpfs", path, "tmpfs", mf.MS_RDONLY, None, f"mask directory {path}")
        else:
            _mount("/dev/null", path, None, mf.MS_BIND, None, f"mask file {path}")


def readonly_paths(paths: list[str], in_userns: bool) -> None:
    for path in paths:
        if not os.path.exists(path):
            continue
        _mount(path, path, None, mf.MS_BIND | mf.MS_REC, None, f"bind {path} on itself")
        flags = mf.MS_RDONLY | mf.MS_NOSUID | mf.MS_NODEV | mf.MS_NOEXEC
        if in_userns:
            flags |= locked_flags(path)
        _mount(None, path, None, mf.MS_REMOUNT | mf.MS_BIND | mf.MS_REC | flags, None,
               f"make {path} read-only")


def readonly_root(in_userns: bool) -> None:
    flags = mf.MS_RDONLY | (locked_flags("/") if in_userns else 0)
    _mount(None, "/", None, mf.MS_REMOUNT | mf.MS_BIND | flags, None, "make / read-only")


def set_root_propagation(propagation: str) -> None:
    if propagation in ("shared", "rshared", "unbindable", "runbindable"):
        _mount(None, "/", None, mf.PROPAGATION_OPTIONS[propagation], None,
               f"set rootfsPropagation {propagation}")
