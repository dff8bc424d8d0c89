"""The few `os` and `os.path` helpers the hot commands (state, start, kill, delete) need, on the
builtin `posix` module. Why: `import os` runs os, posixpath, stat, genericpath and
_collections_abc, ~4.4 Mi instructions (~1.2 ms, `bench/profile`): most of what those commands
cost above the bare interpreter, which imports none of them."""

import posix

_S_IFMT, _S_IFDIR = 0o170000, 0o040000


def join(directory: str, name: str) -> str:
    """os.path.join(directory, name) for a relative name."""
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def parent(path: str) -> str:
    """os.path.dirname for a path without a trailing slash."""
    head = path.rpartition("/")[0]
    return head or ("/" if path.startswith("/") else "")


def is_dir(path: str) -> bool:
    try:
        return posix.stat(path).st_mode & _S_IFMT == _S_IFDIR
    except (OSError, ValueError):
        return False


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


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
