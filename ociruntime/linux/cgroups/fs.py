"""cgroupfs file access: one write(2) per value, raw fds (no io stack), and every failure a
CgroupError naming the file and keeping the errno (fail). Directory helpers: create with the
count of components made, remove bottom-up, list the pids of a tree."""

from __future__ import annotations

import os

from ociruntime.errors import CgroupError


def reason(err: OSError) -> str:
    """strerror in the lower-case style runc and the rest of our messages use."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


def fail(what: str, err: OSError) -> CgroupError:
    """A CgroupError for `what` ("write 5 to /x", "mkdir /y") that keeps the errno and path."""
    path = err.filename if isinstance(err.filename, str) else None
    return CgroupError(f"cgroup: {what}: {reason(err)}", errno=err.errno, operation=what, path=path)


def write_file(path: str, value: str) -> None:
    """One write(2) of `value` to a cgroup file: the kernel parses each write as one command."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise fail(f"write {value} to {path}", e) from e
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise fail(f"write {value} to {path}", e) from e
    finally:
        os.close(fd)


def read_file(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise fail(f"read {path}", e) from e
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as e:
        raise fail(f"read {path}", e) from e
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def read_int(path: str) -> int:
    """An integer cgroup file; "max" (unlimited) reads as 0, runc's convention in stats."""
    text = read_file(path).strip()
    return 0 if text == "max" else int(text)


def read_kv(path: str) -> dict[str, int]:
    """A flat keyed file ("key value" per line: memory.stat, cpu.stat, cgroup.events)."""
    out: dict[str, int] = {}
    for line in read_file(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def mkdirs(path: str) -> int:
    """mkdir -p that returns how many directories it created (so destroy can remove exactly
    those). The common case -- parent exists -- costs one syscall."""
    try:
        os.mkdir(path, 0o755)
        return 1
    except FileExistsError:
        return 0
    except FileNotFoundError:
        pass
    except OSError as e:
        raise fail(f"mkdir {path}", e) from e
    parent = os.path.dirname(path)
    if parent == path:
        return 0
    made = mkdirs(parent)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return made
    except OSError as e:
        raise fail(f"mkdir {path}", e) from e
    return made + 1


def missing_components(path: str) -> int:
    """How many directories mkdirs(path) would create now: counted before creating them, so
    that a create killed half-way has already recorded which directories are its own."""
    count = 0
    while not os.path.isdir(path):
        count += 1
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return count


def read_procs(path: str) -> list[int]:
    """pids in a cgroup and all its descendants (a container may create nested cgroups)."""
    try:
        text = read_file(path + "/cgroup.procs")
    except CgroupError as e:
        if e.errno == 2:  # ENOENT: the cgroup is already gone
            return []
        raise
    pids = [int(p) for p in text.split()]
    for child in subdirs(path):
        pids.extend(read_procs(child))
    return pids


def subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def rmdir_tree(path: str) -> None:
    """Remove a cgroup and any child cgroups, bottom-up; gone already is fine.

    rmdir of a cgroup fails with EBUSY while it has children or member tasks. Tasks of a killed
    container can take a few milliseconds to leave after SIGKILL, so EBUSY without children is
    retried with a short bounded back-off (~0.5 s in total)."""
    delay = 0.001
    for _ in range(10):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != 16:  # EBUSY
                raise fail(f"rmdir {path}", e) from e
            last = e
        children = subdirs(path)
        for child in children:
            rmdir_tree(child)
        if not children:
            import time

            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    raise fail(f"rmdir {path}", last)


def remove_parents(path: str, count: int) -> None:
    """Best-effort removal of the `count` parent directories we created above `path`; a parent
    another container still uses is busy and stays."""
    for _ in range(count):
        path = os.path.dirname(path)
        try:
            os.rmdir(path)
        except OSError:
            return


def clean_path(path: str) -> str:
    """Lexically clean a cgroups path; '..' cannot climb above the root (or the base of a
    relative path)."""
    absolute = path.startswith("/")
    cleaned = os.path.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    return cleaned if absolute else cleaned.lstrip("/")
