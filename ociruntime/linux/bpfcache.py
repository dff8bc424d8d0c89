"""Compiled seccomp programs, kept beside the package's bytecode and reused.

libseccomp takes ~12 ms to compile an engine's default profile (podman's: 22 rules naming 437
syscalls for three architectures; ~3.5 ms adding the rules, ~7.5 ms generating the program),
on every create and exec, and engines give almost every container the same profile. The
program is kept in the package's __pycache__/seccomp/ (directory()), a file per profile named by
the SHA-256 of what it is compiled from, and read back when a create or exec compiles the same
profile with the same libseccomp, kernel and code. Like the bytecode cache beside it, it is a
derived file that goes with the install (pip uninstall leaves both, as any file it did not
install), not host state: nothing is left in the state root (--root) or elsewhere on the host,
and every --root shares it.

What is read back is trusted as the bytecode cache is: a regular file that root or we own and
nobody else may write, in a directory of the same kind, opened by fd. The file holds everything
the program was compiled from, compared byte for byte, so that only equal inputs ever share a
program (a hash collision included); anything else is compiled anew. Where it cannot be written
(an install the caller does not own, a read-only one, a full disk) it costs only the compile."""

import posix

import ociruntime
from ociruntime.linux import seccomp
from ociruntime.spectables import SECCOMP_ACTIONS, SECCOMP_ERRNO_ACTIONS, SECCOMP_OPERATORS

MAGIC = b"ociBPF01"
# Engines use a handful of profiles; past this many the directory is emptied (on a compile).
MAX_ENTRIES = 64
MAX_FILE = 1 << 20


def directory() -> str:
    """Where the programs are kept: the package's __pycache__ (ociruntime/bytecache.py's too)."""
    return f"{ociruntime.__path__[0]}/__pycache__/seccomp"


def filter_for(spec, path: str) -> seccomp.Filter:
    """The filter of `spec`: kept in the directory `path` (directory()), or compiled and kept."""
    source = _compiled_from(spec)
    name = _sha256(source).hexdigest()
    bpf = _read(path, name, source)
    if bpf is not None:
        return seccomp.filter_of(spec, bpf)
    compiled = seccomp.compile_filter(spec)
    _keep(path, name, source, compiled.bpf)
    return compiled


def _sha256(data: bytes):
    try:
        from _sha256 import sha256  # built into 3.11, where hashlib would load OpenSSL (~2 ms)
    except ImportError:  # 3.12 renamed it
        from hashlib import sha256
    return sha256(data)


def _compiled_from(spec) -> bytes:
    """Everything the program depends on, exactly (the repr of str, int and None is): the
    profile's action, architectures and rules, libseccomp's version, the kernel, and our code
    (seccomp.py and the tables it maps names with)."""
    from ociruntime.linux.kernel import shim

    v = shim()[1].seccomp_version()
    uname = posix.uname()
    code = posix.stat(seccomp.__file__)
    rules = tuple((tuple(r.names), r.action, r.errno_ret,
                   tuple((a.index, a.op, a.value, a.value_two) for a in r.args)) for r in spec.syscalls)
    return repr(((v.major, v.minor, v.micro), uname.release, uname.machine, code.st_mtime_ns, code.st_size,
                 sorted(SECCOMP_ACTIONS.items()), SECCOMP_ERRNO_ACTIONS, sorted(SECCOMP_OPERATORS.items()),
                 spec.default_action, spec.default_errno_ret, tuple(spec.architectures), rules)).encode()


def _open_dir(path: str) -> int:
    """The cache directory, if it is ours; -1 if it is missing or not to be trusted."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
    except OSError:
        return -1
    try:
        ociruntime._trusted(fd, 0o040000)
    except ValueError:
        posix.close(fd)
        return -1
    return fd


def _read(path: str, name: str, source: bytes) -> bytes | None:
    """The program kept for `source`, or None."""
    dir_fd = _open_dir(path)
    if dir_fd < 0:
        return None
    try:
        fd = posix.open(name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK | posix.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    finally:
        posix.close(dir_fd)
    try:
        ociruntime._trusted(fd)
        data = posix.read(fd, MAX_FILE + 1)  # files are renamed into place whole, never rewritten
    except (ValueError, OSError):
        return None
    finally:
        posix.close(fd)
    head = MAGIC + len(source).to_bytes(4, "little") + source
    bpf = data[len(head):]
    if len(data) > MAX_FILE or not data.startswith(head) or not bpf or len(bpf) % 8:  # 8-byte instructions
        return None
    return bpf


def _keep(path: str, name: str, source: bytes, bpf: bytes) -> None:
    """Write the program for next time; a failure only means compiling it again then. Readable
    by all, as the package's bytecode is: a program is no secret, and another user trusts a file
    of root's."""
    from ociruntime.state import write_atomic

    try:
        posix.mkdir(path, 0o755)
    except OSError:
        pass  # there already, or not to be made: _open_dir decides
    dir_fd = _open_dir(path)
    if dir_fd < 0:
        return
    try:
        names = posix.listdir(dir_fd)
        if len(names) >= MAX_ENTRIES:
            for old in names:
                posix.unlink(old, dir_fd=dir_fd)
        write_atomic(name, MAGIC + len(source).to_bytes(4, "little") + source + bpf, 0o644, dir_fd=dir_fd)
    except OSError:
        pass  # a read-only or full file system, or another create emptying it meanwhile
    finally:
        posix.close(dir_fd)
