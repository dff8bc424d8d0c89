"""The state directory: layout, ID validation, locking, atomic writes, and status from the kernel.

<root>/<id>/state.json   what `create` recorded (pid + process start time, bundle, cgroups, hooks)
<root>/<id>/exec.fifo    exists while the container is `created`; `start` writes to it
A container's status is never read from the file: it is derived from whether the recorded pid
still names the same process (its start time in /proc/<pid>/stat) and whether the fifo exists.
"""

from __future__ import annotations

import fcntl
import os

from ociruntime import jsonio
from ociruntime.errors import ContainerExists, ContainerNotFound, OciError, UsageError

STATE_FILE = "state.json"
CONFIG_COPY = "config.json"
EXEC_FIFO = "exec.fifo"
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-.")
MAX_ID_LEN = 255  # it names a directory: NAME_MAX


def validate_id(container_id: str) -> str:
    """runc's rule: [A-Za-z0-9_+.-]+, and never a path trick ('.', '..')."""
    if not container_id:
        raise UsageError("container ID must not be empty")
    if len(container_id) > MAX_ID_LEN:
        raise UsageError(f"container ID is {len(container_id)} characters long (at most {MAX_ID_LEN})")
    bad = next((c for c in container_id if c not in _ID_CHARS), None)
    if bad is not None:
        raise UsageError(f"invalid container ID {container_id[:64]!r}: character {bad!r} is not "
                         "allowed (use A-Z a-z 0-9 _ + - .)")
    if container_id in (".", ".."):
        raise UsageError(f"invalid container ID {container_id!r}")
    return container_id


def ensure_root(root: str) -> None:
    try:
        os.makedirs(root, 0o711, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--root {root}: exists and is not a directory") from None
    except OSError as e:
        raise OciError(f"--root {root}: cannot create state directory: {e.strerror}") from None
    if not os.path.isdir(root):
        raise UsageError(f"--root {root}: not a directory")


class StateDir:
    """One container's state directory, held under an exclusive flock while a command runs."""

    def __init__(self, root: str, container_id: str) -> None:
        self.id = validate_id(container_id)
        self.root = root
        self.path = os.path.join(root, container_id)
        self._fd = -1

    # --- existence and locking ---------------------------------------------------------
    @classmethod
    def create(cls, root: str, container_id: str) -> StateDir:
        d = cls(root, container_id)
        ensure_root(root)
        try:
            os.mkdir(d.path, 0o711)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        d._lock()
        return d

    @classmethod
    def open(cls, root: str, container_id: str, lock: bool = True) -> StateDir:
        d = cls(root, container_id)
        if lock:
            d._lock()
        if not os.path.exists(d.file(STATE_FILE)):
            d.unlock()
            raise ContainerNotFound(container_id)
        return d

    def _lock(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except NotADirectoryError:
            raise UsageError(f"--root {self.root}: not a directory") from None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        # The directory may have been removed by a concurrent delete while we waited.
        if not os.path.isdir(self.path):
            self.unlock()
            raise ContainerNotFound(self.id)

    def unlock(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # --- the state file ----------------------------------------------------------------
    def save(self, data: dict) -> None:
        write_atomic(self.file(STATE_FILE), jsonio.dumps(data).encode(), 0o600)

    def save_config(self, raw: dict) -> None:
        write_atomic(self.file(CONFIG_COPY), jsonio.dumps(raw).encode(), 0o600)

    def load(self) -> dict:
        try:
            with open(self.file(STATE_FILE), "rb") as f:
                data = jsonio.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except NotADirectoryError:
            raise UsageError(f"--root {self.root}: not a directory") from None
        except ValueError as e:
            raise OciError(f"container {self.id!r}: state file is corrupt: {e}") from None
        if not isinstance(data, dict):
            raise OciError(f"container {self.id!r}: state file is corrupt")
        return data

    def remove(self) -> None:
        for name in os.listdir(self.path):
            os.unlink(self.file(name))
        os.rmdir(self.path)
        self.unlock()


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write to a temporary file in the same directory, fsync-free rename over the target."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.rename(tmp, path)


# --- the kernel's view ---------------------------------------------------------------------
def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot); None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_same_process(pid: int, start_time: int) -> bool:
    return pid > 0 and process_start_time(pid) == start_time


def status_of(d: StateDir, data: dict) -> str:
    """creating / created / running / stopped, from the kernel; never a recorded status.
    `creating` marks a state file written while `create` is still building the container."""
    if not is_same_process(int(data.get("pid", 0)), int(data.get("start_time", -1))):
        return "stopped"
    if data.get("creating"):
        return "creating"
    if os.path.exists(d.file(EXEC_FIFO)):
        return "created"
    if data.get("cgroup") and _frozen(data["cgroup"]):
        return "paused"
    return "running"


def _frozen(cgroup_state: dict) -> bool:
    from ociruntime.linux import cgroups  # imports only os: cheap on the `state` path

    return cgroups.from_state(cgroup_state).frozen()
