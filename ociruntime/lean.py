"""The few `os` and `os.path` helpers the runtime's own process needs, on the builtin `posix`
module. Why: `import os` runs os, posixpath, stat, genericpath and _collections_abc, ~4.4 Mi
instructions (~1.3 ms, `bench/profile`): most of what the small commands (state, start, kill,
delete) cost above the bare interpreter, and ~4% of a `create`, whose own process needs no
`os` either. The child it forks imports `os` (linux/init.py), off the runtime's path."""

import posix

_S_IFMT, _S_IFDIR, _S_IFREG, _S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000


def join(directory: str, name: str) -> str:
    """os.path.join(directory, name): an absolute name replaces the directory."""
    if name.startswith("/") or not directory:
        return name
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def normpath(path: str) -> str:
    """os.path.normpath: repeated slashes, "." and ".." resolved without looking at the
    filesystem; ".." never climbs above "/"."""
    # POSIX leaves the meaning of exactly two leading slashes to the system: they are kept.
    lead = "//" if path.startswith("//") and not path.startswith("///") else "/" if path.startswith("/") else ""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not lead:
            parts.append(part)  # a relative path may start above its base
    return lead + "/".join(parts) or "."


def abspath(path: str) -> str:
    """os.path.abspath: against the current directory, then normalised."""
    return normpath(path if path.startswith("/") else join(posix.getcwd(), path))


def parent(path: str) -> str:
    """os.path.dirname for a path without a trailing slash."""
    head = path.rpartition("/")[0]
    return head or ("/" if path.startswith("/") else "")


def is_dir(path: str) -> bool:
    try:
        return posix.stat(path).st_mode & _S_IFMT == _S_IFDIR
    except (OSError, ValueError):
        return False


def is_symlink(path: str) -> bool:
    try:
        return posix.lstat(path).st_mode & _S_IFMT == _S_IFLNK
    except (OSError, ValueError):
        return False


def is_file(path: str) -> bool:
    try:
        return posix.stat(path).st_mode & _S_IFMT == _S_IFREG
    except (OSError, ValueError):
        return False


def makedirs(path: str, mode: int) -> None:
    """os.makedirs(path, mode, exist_ok=True): missing parents are made with the default mode;
    FileExistsError when the path is there but not a directory."""
    try:
        posix.mkdir(path, mode)
    except FileExistsError:
        if not is_dir(path):
            raise
    except FileNotFoundError:
        above = parent(path)
        if above in ("", "/", path):
            raise
        makedirs(above, 0o777)
        try:
            posix.mkdir(path, mode)
        except FileExistsError:  # made meanwhile by another runtime
            if not is_dir(path):
                raise


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def read_small(path: str) -> bytes:
    """A small kernel file's first 4 kB (a cgroup's state, /proc/PID/stat: procfs and cgroupfs
    return such a file whole in one read), or b"" if it cannot be read. posix, not open(): a
    buffered file object, its 8 kB buffer and four more syscalls cost ~170 kB of peak RSS in a
    small command (/usr/bin/time, interleaved)."""
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return posix.read(fd, 4096)
    except OSError:
        return b""  # a process reaped since the open (ESRCH)
    finally:
        posix.close(fd)


def read_text(path: str) -> str:
    """read_small's text, "" if the file cannot be read."""
    return read_small(path).decode(errors="replace")


def rmdir_parents(path: str, count: int) -> None:
    """Best-effort removal of the `count` parent directories a container made above its cgroup
    `path`; a parent another container still uses is busy and stays."""
    for _ in range(count):
        path = parent(path)
        try:
            posix.rmdir(path)
        except OSError:
            return


def getenv(name: str, default: str = "") -> str:
    """os.environ.get(name, default); posix.environ has the raw bytes."""
    value = posix.environ.get(name.encode())
    return default if value is None else value.decode(errors="surrogateescape")
