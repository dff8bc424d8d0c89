"""The syscall seam: every kernel call the container set-up makes that needs privilege, or that
Python cannot make itself, goes through one object, `kernel()`.

`Kernel` is the real one: each method is one call into the compiled shim (csrc/shim.c), which
is loaded on the first call, never at import (validating a config does not need it). A call
that fails raises SyscallError with its errno, the operation (`what`, the words the user sees)
and the path it was made on. A method takes and returns Python values (str, int, bytes): the
C types stay here, so a test double records calls a reader can compare.

`use(k)` installs another object with the same methods (the recording fake in tests/unit), so
the mount, device and security sequences are unit-tested without root; it returns the previous
one. Unprivileged calls the rest of the code makes with `os` (open, fstat, mkdir) stay there:
they work for any user, and the fake lets them run for real on a scratch directory."""

from __future__ import annotations

import posix

from ociruntime import lean
from ociruntime.errors import SetupError, SyscallError

_shim = None
RENAME_EXCHANGE = 2  # renameat2(2)


def shim():
    """The compiled shim's (ffi, lib), imported on first use. Kernel calls go through Kernel;
    this is for libseccomp, which only compiles a filter (no kernel call)."""
    global _shim
    if _shim is None:
        from ociruntime import load_extension

        try:
            load_extension("_cffi_backend")  # by its path, as the shim's own import would search for it
            module = load_extension("ociruntime._shim")
        except ImportError as e:  # a broken install (the .so or cffi missing): the host's doing
            raise SetupError(f"cannot load the runtime's compiled shim: {e} (reinstall ociruntime)") from None
        _shim = (module.ffi, module.lib)
    return _shim


def swap_names(a: str, b: str, dir_fd: int | None) -> bool:
    """state.write_atomic's way over a file that exists (StateDir.update: create's later steps,
    exec): swap the new file a and the old b (renameat2 RENAME_EXCHANGE); the caller removes
    the old one by a. On ext4 a rename over a file writes the new one's blocks at once
    (auto_da_alloc: ~0.1-0.3 ms here, on create's path), which delete then frees (~0.3 ms);
    swapped, neither file had any yet. False where the kernel or the filesystem cannot, or b
    is gone: the caller renames."""
    try:
        kernel().exchange(-100 if dir_fd is None else dir_fd, a, b, f"exchange {a} and {b}")  # AT_FDCWD
    except SetupError:
        return False
    return True


def _cstr(ffi, s: str | None):
    return ffi.NULL if s is None else s.encode()


class Kernel:
    """The host kernel, through the shim. Methods mirror the syscalls (see shim.h)."""

    __slots__ = ()

    @staticmethod
    def _check(ret: int, what: str, path: str | None = None) -> int:
        if ret < 0:
            raise SyscallError(shim()[0].errno, what, path)
        return ret

    # --- namespaces and identity ------------------------------------------------------------
    def unshare(self, flags: int, what: str) -> None:
        self._check(shim()[1].oci_unshare(flags), what)

    def setns(self, fd: int, nstype: int, what: str) -> None:
        self._check(shim()[1].oci_setns(fd, nstype), what)

    def sethostname(self, name: str, what: str) -> None:
        raw = name.encode()
        self._check(shim()[1].oci_sethostname(raw, len(raw)), what)

    def setdomainname(self, name: str, what: str) -> None:
        raw = name.encode()
        self._check(shim()[1].oci_setdomainname(raw, len(raw)), what)

    def fork3(self, flags: int, cgroup_fd: int, what: str) -> int:
        """clone3 as a fork: the child's pid in the parent, 0 in the child."""
        return self._check(shim()[1].oci_fork3(flags, cgroup_fd), what)

    # --- CPUs (of the child just forked: in tests, a recording fake's made-up pid) -----------
    def getcpu(self, what: str) -> int:
        return self._check(shim()[1].oci_getcpu(), what)

    @staticmethod
    def runnable() -> int:
        """Tasks running or waiting for a CPU on the host now (/proc/loadavg's fourth field,
        before the slash); 0 if it cannot be read."""
        fields = lean.read_small("/proc/loadavg").split()
        running = fields[3].split(b"/")[0] if len(fields) > 3 else b""
        return int(running) if running.isdigit() else 0

    def affinity(self, pid: int, what: str) -> set[int]:
        try:
            return posix.sched_getaffinity(pid)
        except OSError as e:
            raise SyscallError(e.errno, what) from None

    def set_affinity(self, pid: int, cpus: set[int], what: str) -> None:
        try:
            posix.sched_setaffinity(pid, cpus)
        except OSError as e:
            raise SyscallError(e.errno, what) from None

    # --- mounts ----------------------------------------------------------------------------
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None, what: str) -> None:
        ffi, lib = shim()
        self._check(lib.oci_mount(_cstr(ffi, source), target.encode(), _cstr(ffi, fstype), flags,
                                  _cstr(ffi, data or None)), what, target)

    def umount2(self, target: str, flags: int, what: str) -> None:
        self._check(shim()[1].oci_umount2(target.encode(), flags), what, target)

    def pivot_root(self, new_root: str, put_old: str, what: str) -> None:
        self._check(shim()[1].oci_pivot_root(new_root.encode(), put_old.encode()), what, new_root)

    def mount_setattr(self, dfd: int, path: str, flags: int, attr_set: int, attr_clr: int,
                      propagation: int, what: str, userns_fd: int = 0) -> None:
        self._check(shim()[1].oci_mount_setattr_userns(dfd, path.encode(), flags, attr_set, attr_clr,
                                                       propagation, userns_fd), what)

    def open_tree(self, dfd: int, path: str, flags: int, what: str) -> int:
        return self._check(shim()[1].oci_open_tree(dfd, path.encode(), flags), what, path or None)

    def move_mount(self, from_dfd: int, from_path: str, to_dfd: int, to_path: str, flags: int,
                   what: str) -> None:
        self._check(shim()[1].oci_move_mount(from_dfd, from_path.encode(), to_dfd, to_path.encode(), flags),
                    what)

    def fsopen(self, fstype: str, flags: int, what: str) -> int:
        return self._check(shim()[1].oci_fsopen(fstype.encode(), flags), what)

    def fsconfig(self, fd: int, cmd: int, key: str | None, value: str | None, aux: int, what: str) -> None:
        ffi, lib = shim()
        self._check(lib.oci_fsconfig(fd, cmd, _cstr(ffi, key), _cstr(ffi, value), aux), what)

    def fsmount(self, fd: int, flags: int, attr_flags: int, what: str) -> int:
        return self._check(shim()[1].oci_fsmount(fd, flags, attr_flags), what)

    def fstatfs_type(self, fd: int, what: str) -> int:
        ffi, lib = shim()
        out = ffi.new("uint64_t *")
        self._check(lib.oci_fstatfs_type(fd, out), what)
        return int(out[0])

    def openat2(self, dfd: int, path: str, flags: int, mode: int, resolve: int, what: str) -> int:
        return self._check(shim()[1].oci_openat2(dfd, path.encode(), flags, mode, resolve), what, path)

    # --- files that need privilege (device nodes, owners) -----------------------------------
    def mknod(self, dirfd: int, name: str, mode: int, rdev: int, what: str) -> None:
        try:
            posix.mknod(name, mode, rdev, dir_fd=dirfd)
        except OSError as e:
            raise SyscallError(e.errno, what, name) from None

    def chown(self, path: str, uid: int, gid: int, what: str) -> None:
        try:
            posix.chown(path, uid, gid)
        except OSError as e:
            raise SyscallError(e.errno, what, path) from None

    # --- process security ------------------------------------------------------------------
    def setresuid(self, uid: int, what: str) -> None:
        try:
            posix.setresuid(uid, uid, uid)
        except OSError as e:
            raise SyscallError(e.errno, what) from None

    def setresgid(self, gid: int, what: str) -> None:
        try:
            posix.setresgid(gid, gid, gid)
        except OSError as e:
            raise SyscallError(e.errno, what) from None

    def prctl(self, option: int, a2: int, a3: int, what: str) -> int:
        return self._check(shim()[1].oci_prctl(option, a2, a3, 0, 0), what)

    def capset(self, sets: list[int], what: str) -> None:
        """sets: effective, permitted, inheritable low words, then the same high words."""
        ffi, lib = shim()
        self._check(lib.oci_capset(ffi.new("uint32_t[6]", sets)), what)

    def setgroups(self, gids: list[int], what: str) -> None:
        ffi, lib = shim()
        self._check(lib.oci_setgroups(len(gids), ffi.new("uint32_t[]", gids) if gids else ffi.NULL), what)

    def seccomp_set_filter(self, flags: int, program: bytes, what: str) -> int:
        ffi, lib = shim()
        buf = ffi.from_buffer(program)
        return self._check(lib.oci_seccomp_set_filter(flags, buf, len(program)), what)

    def join_session_keyring(self, name: str, what: str) -> int:
        return self._check(shim()[1].oci_join_session_keyring(name.encode()), what)

    def keyctl_setperm(self, key: int, perm: int, what: str) -> None:
        self._check(shim()[1].oci_keyctl_setperm(key, perm), what)

    # --- scheduling and memory policy ------------------------------------------------------
    def sched_setattr(self, policy: int, flags: int, nice: int, priority: int, runtime: int,
                      deadline: int, period: int, what: str) -> None:
        self._check(shim()[1].oci_sched_setattr(0, policy, flags, nice, priority, runtime, deadline, period),
                    what)

    def ioprio_set(self, which: int, who: int, ioprio: int, what: str) -> None:
        self._check(shim()[1].oci_ioprio_set(which, who, ioprio), what)

    def personality(self, persona: int, what: str) -> None:
        self._check(shim()[1].oci_personality(persona), what)

    def setrlimit(self, resource: str, soft: int, hard: int, what: str) -> None:
        """resource: an RLIMIT_* name (spectables.RLIMITS); its number is the shim's."""
        lib = shim()[1]
        self._check(lib.oci_setrlimit(getattr(lib, resource), soft, hard), what)

    def exchange(self, dir_fd: int, a: str, b: str, what: str) -> None:
        """Swap the names a and b, both relative to dir_fd (renameat2 RENAME_EXCHANGE)."""
        self._check(shim()[1].oci_renameat2(dir_fd, a.encode(), dir_fd, b.encode(), RENAME_EXCHANGE), what)

    def set_mempolicy(self, mode: int, nodemask: list[int], maxnode: int, what: str) -> None:
        """nodemask: the mask as unsigned longs, lowest first (empty: no mask)."""
        ffi, lib = shim()
        mask = ffi.new("unsigned long[]", nodemask) if nodemask else ffi.NULL
        self._check(lib.oci_set_mempolicy(mode, mask, maxnode), what)

    # --- start -------------------------------------------------------------------------------
    def wait_exec(self, plan: bytes, what: str) -> None:
        """Unmap the interpreter, wait for `start`, exec (csrc/waitexec.c; the plan from
        linux/waitexec.py). Returns -- raising SyscallError -- only if it could not begin:
        then nothing has changed and the caller can wait in Python."""
        ffi, lib = shim()
        self._check(lib.oci_wait_exec(ffi.from_buffer(plan), len(plan)), what)

    # --- bpf ---------------------------------------------------------------------------------
    def bpf(self, cmd: int, attr: bytearray, what: str) -> int:
        """bpf(2) with `attr` as the attr union; the kernel's writes land back in `attr`."""
        ffi, lib = shim()
        return self._check(lib.oci_bpf(cmd, ffi.from_buffer(attr), len(attr)), what)

    def buffer(self, data: bytes | int) -> tuple[int, object]:
        """A stable memory block for a pointer field of a bpf attr: (address, holder). `data`
        is its content, or its size (zeroed). Keep the holder alive across the call."""
        ffi = shim()[0]
        buf = ffi.new("char[]", data)
        return int(ffi.cast("uintptr_t", buf)), buf

    @staticmethod
    def read_buffer(holder, size: int) -> bytes:
        return bytes(shim()[0].buffer(holder, size))


_real = Kernel()
_active: Kernel = _real


def kernel() -> Kernel:
    """The kernel the runtime talks to (the real one unless a test installed another)."""
    return _active


def use(k) -> Kernel:
    """Install `k` (an object with Kernel's methods) for every later call; the previous one."""
    global _active
    prev, _active = _active, k
    return prev
