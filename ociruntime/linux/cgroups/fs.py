"""cgroupfs file access: one write(2) per value, raw fds (no io stack), and every failure a
CgroupError naming the file and keeping the errno (fail). Directory helpers: create with the
count of components made, remove bottom-up, list the pids of a tree."""

import errno
import posix

from ociruntime import lean
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
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError as e:
        raise fail(f"write {value} to {path}", e) from e
    try:
        posix.write(fd, value.encode())
    except OSError as e:
        raise fail(f"write {value} to {path}", e) from e
    finally:
        posix.close(fd)


def read_file(path: str) -> str:
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError as e:
        raise fail(f"read {path}", e) from e
    try:
        chunks = []
        while True:
            chunk = posix.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as e:
        raise fail(f"read {path}", e) from e
    finally:
        posix.close(fd)
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
        posix.mkdir(path, 0o755)
        return 1
    except FileExistsError:
        return 0
    except FileNotFoundError:
        pass
    except OSError as e:
        raise fail(f"mkdir {path}", e) from e
    parent = lean.parent(path)
    if parent == path:
        return 0
    made = mkdirs(parent)
    try:
        posix.mkdir(path, 0o755)
    except FileExistsError:
        return made
    except OSError as e:
        raise fail(f"mkdir {path}", e) from e
    return made + 1


def missing_components(path: str) -> int:
    """How many directories mkdirs(path) would create now: counted before creating them, so
    that a create killed half-way has already recorded which directories are its own."""
    count = 0
    while not lean.is_dir(path):
        count += 1
        parent = lean.parent(path)
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
        with posix.scandir(path) as it:
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
            posix.rmdir(path)
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


def clean_path(path: str) -> str:
    """Lexically clean a cgroups path; '..' cannot climb above the root (or the base of a
    relative path)."""
    absolute = path.startswith("/")
    cleaned = lean.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    return cleaned if absolute else cleaned.lstrip("/")


def kill_cgroup(path: str) -> bool:
    """SIGKILL everything in the cgroup at `path` and below through cgroup.kill (Linux 5.14+),
    then wait until it is empty; False when the kernel has no cgroup.kill."""
    if not lean.exists(path + "/cgroup.kill"):
        return False
    try:
        write_file(path + "/cgroup.kill", "1")
    except CgroupError as e:
        if e.errno in GONE:  # removed meanwhile; the caller's pid walk copes
            return False
        raise
    wait_event(path, "populated", 0, timeout=10.0)
    return True


# A cgroup removed under us (systemd drops an emptied scope on its own): ENOENT on open, ENODEV
# on a file opened before the rmdir (kernfs deactivated it).
GONE = (errno.ENOENT, errno.ENODEV)


def wait_event(path: str, key: str, value: int, timeout: float) -> None:
    """Wait until cgroup.events shows key == value. The kernel signals a change of the file
    to poll() as POLLPRI (kernfs notify); reading re-arms it. No sleeping loop.

    A cgroup removed meanwhile is empty: that ends a wait for "populated 0"; any other wait
    fails naming the cgroup."""
    import select
    import time

    events = path + "/cgroup.events"
    emptied = (key, value) == ("populated", 0)
    try:
        fd = posix.open(events, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError as e:
        if emptied and e.errno in GONE:
            return
        raise fail(f"open {events}", e) from e
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        deadline = time.monotonic() + timeout
        while True:
            try:
                posix.lseek(fd, 0, 0)  # SEEK_SET
                text = posix.read(fd, 4096).decode()
            except OSError as e:
                if emptied and e.errno in GONE:
                    return
                raise fail(f"read {events} (waiting for {key} {value})", e) from e
            for line in text.splitlines():
                name, _, current = line.partition(" ")
                if name == key and current.strip() == str(value):
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                raise CgroupError(f"cgroup: {events}: {key} did not become {value} within "
                                  f"{timeout:g}s")
            poller.poll(left * 1000)
    finally:
        posix.close(fd)
