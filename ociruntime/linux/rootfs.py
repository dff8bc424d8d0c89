"""The container's root filesystem: propagation, mounts, pivot_root, masked and read-only paths.

Every mount target inside the rootfs is resolved with openat2(RESOLVE_IN_ROOT), so a symlink
planted in the image (`/proc -> /host/etc`) resolves inside the rootfs and can never redirect a
mount onto the host; the mount is then made on /proc/self/fd/N of the resolved O_PATH fd, so
nothing can swap the path between the check and the mount (the CVE-2021-30465 class)."""

from __future__ import annotations

import _stat as stat  # stat.py's built-in core: the frozen stat.py would still be unmarshalled and run
import errno
import posix

from ociruntime import lean
from ociruntime.config import Config, Mount
from ociruntime.errors import SetupError, SyscallError
from ociruntime.linux import mountapi
from ociruntime.linux import mountflags as mf
from ociruntime.linux.kernel import kernel

O_PATH = 0o10000000
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
ELOOP = 40
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
# Filesystems that are only ever mounted on an ordinary directory (never through a symlink) and
# verified after mounting: a procfs or sysfs landing where the config did not put it is a way
# out of the container (CVE-2019-19921, CVE-2023-27561, CVE-2025-52881).
SPECIAL_FS = ("proc", "sysfs", "cgroup2")
# Directory names under the container's /sys/fs/cgroup: "" is the unified (cgroup2) hierarchy.
_CGROUP_DIR_NAMES = {"": "unified", "name=systemd": "systemd"}


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None,
           what: str) -> None:
    kernel().mount(source, target, fstype, flags, data, what)


class Rootfs:
    """Mount operations relative to one rootfs directory. The directory fd stays valid across
    pivot_root (it becomes "/"), so masked and read-only paths are resolved through it too."""

    def __init__(self, path: str, in_userns: bool) -> None:
        self.path = path
        self.in_userns = in_userns
        self.fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        # The procfs/sysfs this runtime mounted, by destination: verified mounts, held by fd.
        self.special: dict[str, int] = {}
        # Detached id-mapped trees made by stage1 (idmap.prepare), attached by mount().
        self.idmapped: dict[Mount, int] = {}

    # --- safe resolution ----------------------------------------------------------------
    def open_in_root(self, rel: str, strict: bool = False) -> int:
        """O_PATH fd of rel resolved as if the rootfs were '/', or -1 if it does not exist.
        strict: no symlink at all on the way (procfs/sysfs targets, our own created paths)."""
        return open_beneath(self.fd, rel, RESOLVE_IN_ROOT, strict, f"rootfs {self.path}")

    def make_target(self, dest: str, is_dir: bool, strict: bool = False) -> int:
        """Create dest (and parents) inside the rootfs; returns an O_PATH fd on it.

        Missing components are created where they resolve *in the rootfs*: a symlink in the
        image is followed as if the rootfs were / (an absolute target restarts at the rootfs),
        so `/data -> /host/dir` creates rootfs/host/dir, never the host's directory. Each
        component is created at an fd of its verified parent: a racer who swaps a directory
        of a shared volume for a symlink gets an error, never a directory on the host."""
        rel = dest.lstrip("/") or "."
        fd = self.open_in_root(rel, strict)
        if fd >= 0:
            return fd
        if not self._create_last(rel, is_dir, strict, dest):
            rel, strict = self._create_in_root(dest, is_dir, strict) or ".", True
        # Resolved again from the rootfs, not opened at the parent's fd: a racer may have moved
        # that directory out of a shared volume's subtree since, and a mount at an fd below it
        # would land on the host. In-root, a swap can only lead elsewhere in the rootfs.
        fd = self.open_in_root(rel, strict)
        if fd < 0:
            raise SetupError(f"create mount point {dest} in rootfs: it vanished while being made")
        return fd

    def _create_last(self, rel: str, is_dir: bool, strict: bool, dest: str) -> bool:
        """Most targets lack only their last component (each hierarchy's directory in a cgroup
        view's tmpfs, /dev/pts): made at the fd of its parent, resolved in-root as the whole
        path was, instead of the walk's open, stat and close of every component (~10 syscalls
        fewer each). False, nothing made, when more is missing, the last component is a
        dangling symlink, or a `..` is on the way: the walk handles those (and reports them)."""
        parent_rel, _, name = rel.rpartition("/")
        if name in (".", "..") or ".." in parent_rel.split("/"):
            return False
        try:
            parent = self.open_in_root(parent_rel or ".", strict)
        except SetupError:
            return False
        if parent < 0:
            return False
        try:
            return self._step(parent, name, is_dir, dest) is None
        finally:
            posix.close(parent)

    def _parent_fd(self, cur: list[str], dest: str) -> int:
        fd = self.open_in_root("/".join(cur) or ".", strict=True)
        if fd < 0:
            raise SetupError(f"create mount point {dest}: /{'/'.join(cur)} vanished while being made")
        return fd

    def _create_in_root(self, dest: str, is_dir: bool, strict: bool) -> str:
        """Walk dest component by component from the rootfs, following symlinks in-root (unless
        strict) and creating what is missing at the parent's fd; the resolved, symlink-free
        path relative to the rootfs."""
        todo = [p for p in dest.split("/") if p and p != "."][::-1]  # a stack: next is last
        cur: list[str] = []
        hops = 0
        while todo:
            name = todo.pop()
            if name == "..":
                cur = cur[:-1]
                continue
            parent = self._parent_fd(cur, dest)
            try:
                target = self._step(parent, name, is_dir or bool(todo), dest)
                if target is None:
                    cur.append(name)
                    continue
                if strict:
                    raise SetupError(f"/{'/'.join([*cur, name])} is a symlink in rootfs {self.path}")
                hops += 1
                if hops > 40:
                    raise SetupError(f"create mount point {dest}: too many levels of symbolic links")
                if target.startswith("/"):
                    cur = []
                todo.extend(p for p in target.split("/")[::-1] if p and p != ".")
            finally:
                posix.close(parent)
        return "/".join(cur)

    @staticmethod
    def _step(parent: int, name: str, is_dir: bool, dest: str) -> str | None:
        """One component at a verified parent fd: create it if missing; a symlink's target, or
        None when the component is there and not a symlink."""
        try:
            st = posix.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            _create_at(parent, name, is_dir, dest)
            return None
        except OSError as e:
            raise SyscallError.from_os(e, f"create mount point {dest}: {name}") from None
        if stat.S_ISLNK(st.st_mode):
            return posix.readlink(name, dir_fd=parent)
        return None

    # --- mounts -------------------------------------------------------------------------
    def mount(self, m: Mount, bundle: str, cgroup_paths: dict[str, str] | None) -> None:
        dest = m.destination if m.destination.startswith("/") else "/" + m.destination
        opts = mf.parse_options(m.options)
        if m.type == "cgroup" and not m.is_bind():
            if not cgroup_paths or set(cgroup_paths) == {""}:  # a cgroup2-only host
                self._mount_cgroup2(dest, opts, (cgroup_paths or {}).get(""))
            else:
                self._mount_cgroup_v1_view(dest, opts, cgroup_paths)
            return
        if m.type in SPECIAL_FS and not m.is_bind() and not opts.flags & mf.MS_REMOUNT:
            self._mount_special(m, dest, opts)
            return
        # A bind (id-mapped or not) is made detached and gets all its attributes, the recursive
        # ones too, before it is attached; everything else is changed where it was mounted.
        detached = not opts.flags & mf.MS_REMOUNT and (m in self.idmapped or m.is_bind())
        if opts.flags & mf.MS_REMOUNT:
            self._remount(dest, opts)
        elif m in self.idmapped:
            self._attach_idmapped(m, dest, opts)
        elif m.is_bind():
            self._bind(m, dest, opts, bundle)
        elif opts.copy_up:
            self._mount_tmpfs_copy_up(m, dest, opts)
        else:
            fd = self.make_target(dest, True)
            try:
                target = f"/proc/self/fd/{fd}"
                _mount(m.source or m.type, target, m.type, opts.flags, opts.data,
                       f"mount {m.type} {m.source or m.type} on {dest}")
            finally:
                posix.close(fd)
        if opts.recursive and not detached:
            self._set_recursive(dest, opts)
        self._propagate(dest, opts)

    def _mount_special(self, m: Mount, dest: str, opts: mf.MountOptions) -> None:
        """procfs, sysfs, cgroup2: onto an ordinary directory only, made with the new mount API
        and checked to be that filesystem; the mount's fd is kept for masks and sysctls."""
        what = f"mount {m.type} on {dest}"
        try:
            target = self.make_target(dest, True, strict=True)
        except SetupError as e:
            raise SetupError(f"{what}: {m.type} must be mounted on an ordinary directory: {e}") from None
        try:
            if not stat.S_ISDIR(posix.fstat(target).st_mode):
                raise SetupError(f"{what}: {m.type} must be mounted on an ordinary directory")
            try:
                mfd = mountapi.new_mount(m.type, m.source or m.type, opts.flags, opts.data, what)
            except SetupError as e:
                if not (m.type == "sysfs" and self.in_userns and e.errno == errno.EPERM):
                    raise
                mfd = host_sysfs_tree(opts.flags, what)
            try:
                mountapi.verify_fs(mfd, m.type, what)
                mountapi.attach(mfd, target, what)
                if opts.recursive:
                    mountapi.set_attrs(mfd, opts.rec_set, opts.rec_clear, True, what)
                for prop in opts.propagation:
                    mountapi.set_attrs(mfd, 0, 0, bool(prop & mf.MS_REC), what, prop & ~mf.MS_REC)
            except BaseException:
                posix.close(mfd)
                raise
        finally:
            posix.close(target)
        old = self.special.pop(dest, -1)
        if old >= 0:
            posix.close(old)
        self.special[dest] = mfd

    def _mount_tmpfs_copy_up(self, m: Mount, dest: str, opts: mf.MountOptions) -> None:
        """tmpcopyup: a new tmpfs that starts with a copy of what it covers. The copy goes into
        the detached tmpfs, from an fd of the covered directory, before it is attached: no path
        is followed, so image symlinks are copied as symlinks, never out of the rootfs."""
        from ociruntime.linux import copyup  # loaded before the namespaces (init.load_what_the_namespaces_need)

        what = f"mount tmpfs on {dest} (tmpcopyup)"
        existed = self.open_in_root(dest)
        if existed >= 0:
            posix.close(existed)
        target = self.make_target(dest, True)
        try:
            mfd = mountapi.new_mount("tmpfs", m.source or "tmpfs", opts.flags & ~mf.MS_RDONLY, opts.data, what)
            try:
                # A directory of the image lends the tmpfs its mode (as runc); one we just made
                # leaves the tmpfs's own (mode= or 1777).
                copyup.copy_tree(target, mfd, what, keep_mode=existed >= 0)
            except BaseException:
                posix.close(mfd)
                raise
            # Filled first, then made read-only.
            mountapi.attach_detached(mfd, target, what, mf.MOUNT_ATTR_RDONLY if opts.flags & mf.MS_RDONLY else 0)
        finally:
            posix.close(target)

    def special_fd(self, fstype: str, dest: str) -> int:
        """The fd of the verified `fstype` mount at dest, or -1 if we did not mount one."""
        fd = self.special.get(dest, -1)
        return fd if fd >= 0 and mountapi.fs_type(fd) == mountapi.MAGIC[fstype] else -1

    def _remount(self, dest: str, opts: mf.MountOptions) -> None:
        """The `remount` option changes the mount already at dest instead of stacking one."""
        fd = self.open_in_root(dest)
        if fd < 0:
            raise SetupError(f"remount {dest}: nothing is mounted there")
        try:
            _mount(None, f"/proc/self/fd/{fd}", None, opts.flags, opts.data, f"remount {dest}")
        finally:
            posix.close(fd)

    def _set_recursive(self, dest: str, opts: mf.MountOptions) -> None:
        fd = self.open_in_root(dest)
        try:
            kernel().mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, opts.rec_set, opts.rec_clear, 0,
                                   f"set recursive mount attributes on {dest}")
        finally:
            posix.close(fd)

    def _bind(self, m: Mount, dest: str, opts: mf.MountOptions, bundle: str) -> None:
        source = m.source if m.source.startswith("/") else lean.join(bundle, m.source)
        what = f"bind mount {source} on {dest}"
        try:
            src = posix.open(source, O_PATH | posix.O_CLOEXEC)
        except OSError as e:
            raise SyscallError.from_os(e, f"{what}: source") from None
        try:
            is_dir = stat.S_ISDIR(posix.fstat(src).st_mode)
            tree = mountapi.clone_tree(src, bool(opts.flags & mf.MS_REC), what)
        finally:
            posix.close(src)
        self._attach_tree(tree, dest, is_dir, opts.flags, what, rec=(opts.rec_set, opts.rec_clear))

    def _bind_host_dir(self, host_dir: str, dest: str, flags: int) -> None:
        """A host cgroup directory (with what is mounted below it) bound at dest."""
        what = f"bind cgroup {host_dir} on {dest}"
        try:
            src = posix.open(host_dir, O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except OSError as e:
            raise SyscallError.from_os(e, what) from None
        try:
            tree = mountapi.clone_tree(src, True, what)
        finally:
            posix.close(src)
        self._attach_tree(tree, dest, True, flags, what, strict=True)

    def _attach_idmapped(self, m: Mount, dest: str, opts: mf.MountOptions) -> None:
        """The id-mapped tree stage1 made, attached at its in-root target by fd."""
        tree = self.idmapped.pop(m)
        try:
            is_dir = stat.S_ISDIR(posix.fstat(tree).st_mode)
        except BaseException:
            posix.close(tree)
            raise
        self._attach_tree(tree, dest, is_dir, opts.flags, f"{m.idmap()} mount {m.source} on {dest}",
                          rec=(opts.rec_set, opts.rec_clear))

    def _attach_tree(self, tree: int, dest: str, is_dir: bool, flags: int, what: str,
                     strict: bool = False, rec: tuple[int, int] = (0, 0)) -> None:
        """Give the detached mount `tree` its flags (then the recursive attributes, which win
        where they overlap), then attach it at dest (made in-root, by fd); consumes tree. All
        is set before the mount is reachable: a racer in a shared volume who swaps dest after
        the attach cannot leave it writable by redirecting a later change by path."""
        try:
            self._set_tree_flags(tree, flags, what)
            if rec != (0, 0):
                mountapi.set_attrs(tree, *rec, True, f"{what} (recursive attributes)")
            target = self.make_target(dest, is_dir, strict)
            try:
                mountapi.attach(tree, target, what)
            finally:
                posix.close(target)
        finally:
            posix.close(tree)

    def _set_tree_flags(self, tree: int, flags: int, what: str) -> None:
        """A bind takes the per-mount flags asked for, exactly (as MS_REMOUNT|MS_BIND would set
        them); none asked: it keeps its source's. In a user namespace the source's locked
        flags stay (the kernel refuses to clear them)."""
        want = flags & mf.REMOUNT_FLAGS
        if not want:
            return
        locked = _locked(posix.fstatvfs(tree).f_flag) if self.in_userns else 0
        attr_set = mountapi.mount_attrs(want | locked)
        attr_clear = (mountapi.PER_MOUNT_ATTRS & ~attr_set) | mf.MOUNT_ATTR__ATIME
        try:
            mountapi.set_attrs(tree, attr_set, attr_clear, False, f"{what} ({describe_flags(want | locked)})")
        except SetupError as e:
            if not locked:
                raise
            raise _locked_flags_error(e, locked) from None

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
            locked = locked_flags(target) if self.in_userns else 0
            try:
                _mount(None, target, None, mf.MS_REMOUNT | mf.MS_BIND | want | locked, None,
                       f"remount {dest} with {describe_flags(want | locked)}")
            except SetupError as e:
                if not locked:
                    raise
                raise _locked_flags_error(e, locked) from None
        finally:
            posix.close(fd)

    def _propagate(self, dest: str, opts: mf.MountOptions) -> None:
        for prop in opts.propagation:
            fd = self.open_in_root(dest)
            try:
                _mount(None, f"/proc/self/fd/{fd}", None, prop, None, f"set propagation of {dest}")
            finally:
                posix.close(fd)

    def _mount_cgroup_v1_view(self, dest: str, opts: mf.MountOptions,
                              cgroup_paths: dict[str, str] | None) -> None:
        """`type: cgroup` mounts on a cgroup v1 or hybrid host: a tmpfs with the container's own
        cgroup directories bound in (the unified one as `unified`)."""
        fd = self.make_target(dest, True, strict=True)
        try:
            target = f"/proc/self/fd/{fd}"
            _mount("tmpfs", target, "tmpfs", mf.MS_NOSUID | mf.MS_NODEV | mf.MS_NOEXEC,
                   "mode=755", f"mount tmpfs on {dest}")
        finally:
            posix.close(fd)
        for sub, host_dir in cgroup_view_binds(dest, cgroup_paths):
            self._bind_host_dir(host_dir, sub, opts.flags | mf.MS_NOSUID | mf.MS_NODEV | mf.MS_NOEXEC)
        if opts.flags & mf.MS_RDONLY:
            self.remount_bind(dest, opts.flags)

    def _mount_cgroup2(self, dest: str, opts: mf.MountOptions, own_dir: str | None) -> None:
        """`type: cgroup` on a cgroup2-only host: cgroup2 itself, as runc mounts it; in a cgroup
        namespace its root is the container's cgroup. A user namespace without a cgroup
        namespace may not mount it (EPERM, EBUSY): then, as runc does, the container's own
        cgroup directory is bound there instead."""
        fd = self.make_target(dest, True, strict=True)
        try:
            target = f"/proc/self/fd/{fd}"
            try:
                _mount("cgroup2", target, "cgroup2", opts.flags & ~mf.MS_REMOUNT, None, f"mount cgroup2 on {dest}")
                return
            except SetupError as e:
                if own_dir is None or e.errno not in (errno.EPERM, errno.EBUSY):
                    raise
        finally:
            posix.close(fd)
        self._bind_host_dir(own_dir, dest, opts.flags | mf.MS_NOSUID | mf.MS_NODEV | mf.MS_NOEXEC)

    def symlink(self, target: str, link: str) -> None:
        """Create link -> target inside the rootfs (the link's parent resolved in-root)."""
        parent, name = link.rsplit("/", 1)
        pfd = self.open_in_root(parent or ".")
        if pfd < 0:
            raise SetupError(f"symlink {link}: {parent} does not exist")
        try:
            dirfd = posix.open(f"/proc/self/fd/{pfd}", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
            try:
                posix.symlink(target, name, dir_fd=dirfd)
            except FileExistsError:
                pass
            finally:
                posix.close(dirfd)
        except OSError as e:
            raise SyscallError.from_os(e, f"symlink {link} -> {target}") from None
        finally:
            posix.close(pfd)

    def close(self) -> None:
        for fd in [*self.special.values(), *self.idmapped.values()]:
            posix.close(fd)
        self.special.clear()
        self.idmapped.clear()
        posix.close(self.fd)


def cgroup_view_binds(dest: str, cgroup_paths: dict[str, str]) -> list[tuple[str, str]]:
    """(container path, host cgroup directory) of each bind in a `type: cgroup` mount's view
    (checkpoint names the same ones to criu as external mounts)."""
    return [(f"{dest}/{_CGROUP_DIR_NAMES.get(name, name)}", host_dir)
            for name, host_dir in sorted(cgroup_paths.items())]


def open_beneath(dirfd: int, rel: str, scope: int, strict: bool, where: str) -> int:
    """openat2 O_PATH of rel below dirfd (scope: RESOLVE_IN_ROOT or RESOLVE_BENEATH), never
    through a magic link; strict also refuses any symlink. -1 if it does not exist."""
    resolve = scope | RESOLVE_NO_MAGICLINKS | (RESOLVE_NO_SYMLINKS if strict else 0)
    try:
        return kernel().openat2(dirfd, rel, O_PATH | posix.O_CLOEXEC, 0, resolve,
                                f"resolve /{rel.lstrip('/')} in {where}")
    except SetupError as e:
        if e.errno == errno.ENOENT:
            return -1
        if e.errno == ELOOP and strict:
            raise SetupError(f"/{rel.lstrip('/')} is (or passes through) a symlink in {where}",
                             errno=e.errno, operation=e.operation, path=e.path) from None
        raise


def _create_at(parent: int, name: str, is_dir: bool, dest: str) -> None:
    """Create one component at its parent's fd; one that appeared meanwhile is resolved again
    by the caller (a symlink there is then followed in-root, or refused)."""
    try:
        if is_dir:
            posix.mkdir(name, 0o755, dir_fd=parent)
        else:
            flags = posix.O_CREAT | posix.O_EXCL | posix.O_WRONLY | posix.O_CLOEXEC | posix.O_NOFOLLOW
            posix.close(posix.open(name, flags, 0o644, dir_fd=parent))
    except FileExistsError:
        pass
    except OSError as e:
        raise SyscallError.from_os(e, f"create mount point {dest}: {name}") from None


def host_sysfs_tree(flags: int, what: str) -> int:
    """In a user namespace without a network namespace of its own the kernel refuses a new
    sysfs (it would show network devices the namespace does not own): a detached copy of the
    runtime's /sys instead, recursive (its submounts are locked to it), with the asked-for
    ro/nosuid/nodev/noexec added (never cleared: the kernel locks them). crun does the same."""
    src = posix.open("/sys", O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        tree = mountapi.clone_tree(src, True, f"{what} (bind of the host's /sys)")
    finally:
        posix.close(src)
    try:
        keep = flags & (mf.MS_RDONLY | mf.MS_NOSUID | mf.MS_NODEV | mf.MS_NOEXEC)
        mountapi.set_attrs(tree, mountapi.mount_attrs(keep), 0, True, what)
    except BaseException:
        posix.close(tree)
        raise
    return tree


def locked_flags(path: str) -> int:
    """Flags inherited mounts carry that a user namespace may not clear (remount would fail)."""
    return _locked(posix.statvfs(path).f_flag)


def _locked_flags_error(err: SetupError, locked: int) -> SetupError:
    return SetupError(f"{err} (in a user namespace the kernel keeps the flags the source mount has, "
                      f"{describe_flags(locked)}: they cannot be cleared, nor its atime flag changed)",
                      errno=err.errno, operation=err.operation, path=err.path)


def _locked(f_flag: int) -> int:
    return sum(flag for bit, flag in mf.ST_LOCKED.items() if f_flag & bit)


def describe_flags(flags: int) -> str:
    names = [n for n, (f, on) in mf.FLAG_OPTIONS.items() if on and f & flags == f and
             f & mf.REMOUNT_FLAGS]
    return ",".join(names) or hex(flags)


# --- whole-rootfs steps, in the order init runs them ---------------------------------------
def prepare_root(config: Config) -> None:
    """Stop our mounts from reaching the host, then make the rootfs a mount point of its own.

    Always rslave here, whatever rootfsPropagation says: every copied mount leaves the host's
    peer groups (nothing we mount propagates out) yet still receives from them, so the rootfs
    bind below is a slave of the bundle's mount when that one is shared. The configured
    propagation is applied to the container's / at the very end (set_root_propagation): done
    here, `unbindable` would forbid the bind of the rootfs itself (EINVAL) and a non-recursive
    `slave`/`private` would leave the bundle's mount shared with the host."""
    _mount(None, "/", None, mf.MS_SLAVE | mf.MS_REC, None, "make / rslave")
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
    old_root = posix.open("/", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    new_root = posix.open(rootfs, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        posix.fchdir(new_root)
        kernel().pivot_root(".", ".", f"pivot_root into {rootfs}")
        posix.fchdir(old_root)
        # The old root must not propagate its unmount to the host.
        _mount(None, ".", None, mf.MS_SLAVE | mf.MS_REC, None, "make old root a slave")
        kernel().umount2(".", mf.MNT_DETACH, "detach old root")
        posix.chdir("/")
    finally:
        posix.close(old_root)
        posix.close(new_root)


def move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs over / and chroot (for ramdisk roots where pivot fails)."""
    posix.chdir(rootfs)
    _mount(rootfs, "/", None, mf.MS_MOVE, None, f"move rootfs {rootfs} to /")
    posix.chroot(".")
    posix.chdir("/")


def chroot_root(rootfs: str) -> None:
    """Without a mount namespace of our own: confine the process to rootfs, mounts untouched."""
    try:
        posix.chdir(rootfs)
        posix.chroot(".")
    except OSError as e:
        raise SyscallError.from_os(e, f"root.path {rootfs}: chroot") from None
    posix.chdir("/")


def open_container_path(root: Rootfs, path: str) -> int:
    """After pivot_root: an O_PATH fd of a container path, resolved through the procfs/sysfs
    mount we verified when it lies below one, otherwise in-root; -1 if it does not exist."""
    for dest, fd in root.special.items():
        prefix = dest.rstrip("/") + "/"
        if path.startswith(prefix):
            return open_beneath(fd, path[len(prefix):], RESOLVE_BENEATH, False, dest)
    return root.open_in_root(path)


def null_device(root: Rootfs) -> int:
    """The container's /dev/null, verified to be the null device: masking with anything else
    (a symlink to core_pattern, say) would bind a host file over the masked path (CVE-2025-31133)."""
    try:
        fd = root.open_in_root("dev/null", strict=True)
    except SetupError as e:
        raise SetupError(f"linux.maskedPaths: refusing to mask with /dev/null: {e}") from None
    if fd < 0:
        raise SetupError("linux.maskedPaths: the container has no /dev/null to mask files with")
    try:
        mountapi.verify_char_device(fd, 1, 3, "linux.maskedPaths: /dev/null in the container")
    except BaseException:
        posix.close(fd)
        raise
    return fd


def reopen_null_stdio(root: Rootfs) -> None:
    """After pivot_root: stdio that is the host's /dev/null becomes the container's own (runc
    does the same), since criu cannot checkpoint a file on a mount outside the container. Only
    a verified null device, reopened through our verified procfs; else stdio stays as it is."""
    proc = root.special_fd("proc", "/proc")
    targets = [n for n in (0, 1, 2) if _is_null_device(n)]
    if not targets or proc < 0:
        return
    try:
        fd = root.open_in_root("dev/null", strict=True)
    except SetupError:
        return  # a symlink there: leave stdio alone
    if fd < 0:
        return
    try:
        try:
            mountapi.verify_char_device(fd, 1, 3, "/dev/null in the container")
        except SetupError:
            return
        ours = posix.fstat(fd)
        null = posix.open(f"self/fd/{fd}", posix.O_RDWR | posix.O_CLOEXEC, dir_fd=proc)
        try:
            for n in targets:
                st = posix.fstat(n)
                if (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino):
                    posix.dup2(null, n)
        finally:
            posix.close(null)
    finally:
        posix.close(fd)


def _is_null_device(fd: int) -> bool:
    try:
        st = posix.fstat(fd)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == posix.makedev(1, 3)


def mask_paths(root: Rootfs, paths: list[str]) -> None:
    """After pivot_root: files get the verified /dev/null bound over them, directories an
    empty tmpfs; both read-only, so a mask can never be a writable window."""
    null = -1
    try:
        for path in paths:
            target = open_container_path(root, path)
            if target < 0:
                continue
            try:
                what = f"linux.maskedPaths: mask {path}"
                if stat.S_ISDIR(posix.fstat(target).st_mode):
                    mfd = mountapi.new_mount("tmpfs", "tmpfs", mf.MS_RDONLY, "", what)
                    mountapi.attach_detached(mfd, target, what)
                else:
                    if null < 0:
                        null = null_device(root)
                    mfd = mountapi.clone_tree(null, False, what)
                    mountapi.attach_detached(mfd, target, what, mountapi.READONLY_ATTRS)
            finally:
                posix.close(target)
    finally:
        if null >= 0:
            posix.close(null)


def readonly_paths(root: Rootfs, paths: list[str]) -> None:
    """A read-only copy of each path's mount tree, made detached and attached by fd."""
    for path in paths:
        target = open_container_path(root, path)
        if target < 0:
            continue
        what = f"linux.readonlyPaths: make {path} read-only"
        try:
            tree = mountapi.clone_tree(target, True, what)
            mountapi.attach_detached(tree, target, what, mountapi.READONLY_ATTRS, recursive=True)
        finally:
            posix.close(target)


def readonly_root(in_userns: bool) -> None:
    flags = mf.MS_RDONLY | (locked_flags("/") if in_userns else 0)
    _mount(None, "/", None, mf.MS_REMOUNT | mf.MS_BIND | flags, None, "make / read-only")


def set_root_propagation(propagation: str) -> None:
    """The configured propagation of the container's / (after pivot_root, so that nothing of
    the set-up binds from it). The root is a slave from prepare_root: `slave`/`rslave` need
    nothing more; `shared` gives it a new peer group of its own, and it stays a slave of the
    host's (the spec: shared within the container, not with the host)."""
    flags = mf.PROPAGATION_OPTIONS.get(propagation)
    if flags is None or propagation in ("slave", "rslave"):
        return
    _mount(None, "/", None, flags, None, f"set rootfsPropagation {propagation}")


def read_image_file(path: str, limit: int) -> bytes | None:
    """A small file of the image (after pivot_root or setns: "/" is the container's), read
    in-root without magic links, regular files only and at most `limit` bytes: the image may
    make it a symlink, a FIFO or /dev/zero. None when it is missing or unreadable."""
    root = posix.open("/", O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        fd = kernel().openat2(root, path, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_NOCTTY | posix.O_CLOEXEC,
                              0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, f"{path} in the container")
    except SetupError as e:
        if e.errno in (errno.ENOENT, errno.EACCES, errno.ENOTDIR):  # as if there were no such file
            return None
        raise
    finally:
        posix.close(root)
    try:
        st = posix.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SetupError(f"{path} in the container is not a regular file")
        data = posix.read(fd, limit + 1)
    finally:
        posix.close(fd)
    if len(data) > limit:
        raise SetupError(f"{path} in the container is larger than {limit} bytes")
    return data
