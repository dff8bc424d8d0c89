"""The state directory: layout, ID validation, locking, atomic writes, and status from the kernel.

<root>/<id>/state.json   what `create` recorded (pid + process start time, bundle, cgroups, hooks)
<root>/<id>/exec.fifo    exists while the container is `created`; `start` writes to it
A container's status is never read from the file: it is derived from whether the recorded pid
still names the same process (its start time in /proc/<pid>/stat) and whether the fifo exists.

A runtime can be SIGKILLed at any moment (an OOM kill, a shim's timeout), so every state a
directory can be left in must stay listable and deletable: a directory without state.json is a
container still being created (the window between mkdir and the first write), and `create`
rewrites state.json at each step that makes something (cgroups planned, init pid known) before
making it. Files are written relative to the locked directory's fd, so a command whose
directory was removed under it by `delete --force` fails with ENOENT instead of writing into a
new container of the same ID.

Only a directory the runtime made is a container (load() checks before anything is read): not
a symbolic link, holding none but OWN_FILES, owned by the caller and writable by nobody else. A
mistyped --root or a record another user planted is refused whole, never acted on.
"""

import _signal  # the C module: `signal` would import enum (~3 ms)
import fcntl
import posix
import time

from ociruntime import jsonio, lean
from ociruntime.errors import ContainerExists, ContainerNotFound, NotAContainer, OciError, OptionError, UsageError

DEFAULT_ROOT = "/run/ociruntime"
STATE_FILE = "state.json"
CONFIG_COPY = "config.json"
EXEC_FIFO = "exec.fifo"
CRIU_PIDFILE = "criu.pid"
# Every name the runtime ever makes in a container's directory (write_atomic's temporaries are
# "<one of these>.<pid>.tmp"). A directory holding anything else is not one we made (a mistyped
# --root, say /var/lib, and an "ID" naming a directory of its own): delete removes nothing of it.
OWN_FILES = frozenset((STATE_FILE, CONFIG_COPY, EXEC_FIFO, CRIU_PIDFILE))
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-.")
MAX_ID_LEN = 255  # it names a directory: NAME_MAX
SIGTERM = 15
SIGKILL = 9

# delete --force: how long to wait for the lock, then for its holder to give up after SIGTERM,
# then for it to die of SIGKILL; the whole of `delete -f` must stay under a second.
LOCK_WAIT_S = 0.2
TERM_WAIT_S = 0.3
KILL_WAIT_S = 0.2


class Interrupted(OciError):
    """The command holding a container's lock was told to stop (SIGTERM, sent by delete -f)."""


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


def default_root() -> str:
    """--root when none is given, runc's rule: $XDG_RUNTIME_DIR/ociruntime for an ordinary user
    (or root of a user namespace: see rootless.xdg_state_root), made private and sticky (XDG's
    mark against pruning) as runc does; otherwise /run/ociruntime."""
    from ociruntime.linux import rootless

    xdg = rootless.xdg_state_root()
    if xdg is None:
        if posix.geteuid() != 0 and not posix.access(DEFAULT_ROOT if lean.is_dir(DEFAULT_ROOT)
                                                     else lean.parent(DEFAULT_ROOT), posix.W_OK):
            raise OptionError("root", f"none given, $XDG_RUNTIME_DIR is not set, and the default state "
                              f"directory {DEFAULT_ROOT} is not writable by uid {posix.geteuid()}: set "
                              "XDG_RUNTIME_DIR or give {root}", mentions=("root",))
        return DEFAULT_ROOT
    try:
        lean.makedirs(xdg, 0o700)
        posix.chmod(xdg, 0o1700)
    except OSError as e:
        raise io_error("cannot create state directory ($XDG_RUNTIME_DIR/ociruntime)", xdg, e) from None
    return xdg


def ensure_root(root: str) -> None:
    try:
        lean.makedirs(root, 0o711)
    except FileExistsError:
        raise root_not_a_directory(root) from None
    except OSError as e:
        raise io_error("cannot create state directory", root, e) from None
    if not lean.is_dir(root):
        raise root_not_a_directory(root)


def root_not_a_directory(root: str) -> OptionError:
    """The state directory (runc's --root) is a file, or a path through one."""
    return OptionError("root", f"{root}: not a directory")


def io_error(what: str, path: str, err: OSError) -> OciError:
    """One line naming the operation, the path and the kernel's reason (EROFS, ENOSPC, EIO...)."""
    return OciError(f"{what} {path}: {err.strerror or err}")


def is_own_file(name: str) -> bool:
    if name.endswith(".tmp"):
        name, _, pid = name[:-4].rpartition(".")
        if not pid.isdigit():
            return False
    return name in OWN_FILES


class StateDir:
    """One container's state directory, held under an exclusive flock while a command runs."""

    def __init__(self, root: str, container_id: str) -> None:
        self.id = validate_id(container_id)
        self.root = root
        self.path = lean.join(root, container_id)
        self._fd = -1
        self.locked = False

    # --- existence and locking ---------------------------------------------------------
    @classmethod
    def create(cls, root: str, container_id: str) -> "StateDir":
        d = cls(root, container_id)
        ensure_root(root)
        try:
            posix.mkdir(d.path, 0o711)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        except OSError as e:
            raise io_error("cannot create state directory", d.path, e) from None
        try:
            d._lock()
        except ContainerNotFound:
            raise OciError(f"container {container_id!r} was deleted while it was being created") from None
        return d

    @classmethod
    def open(cls, root: str, container_id: str, lock: bool = True) -> "StateDir":
        """The container's directory (ContainerNotFound if there is none), locked by default.
        A directory without state.json is a container being created: it exists."""
        d = cls(root, container_id)
        if lock:
            d._lock()
        elif not lean.is_dir(d.path):
            raise ContainerNotFound(container_id)
        return d

    @classmethod
    def open_forced(cls, root: str, container_id: str) -> "StateDir":
        """For delete --force, which never waits behind another command: the lock if it is free
        within LOCK_WAIT_S; else its holder is asked to stop (SIGTERM: it undoes its work and
        fails cleanly), then killed; if even that does not free the lock, the directory is
        returned unlocked and the caller goes on carefully (pid + start time checks)."""
        d = cls(root, container_id)
        d._open_fd()
        try:
            if d._try_lock(LOCK_WAIT_S):
                return d
            holders = _pin_holders(d._fd)
            try:
                _signal_all(holders, SIGTERM)
                if d._try_lock(TERM_WAIT_S):
                    return d
                _signal_all(holders, SIGKILL)
                _wait_dead(holders, KILL_WAIT_S)
            finally:
                for pidfd in holders:
                    posix.close(pidfd)
            d._try_lock(0)
            return d
        except ContainerNotFound:
            d.unlock()
            raise

    def _open_fd(self) -> None:
        try:
            self._fd = posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(self.id) from None
        except NotADirectoryError:  # O_NOFOLLOW's answer for a symbolic link too
            if lean.is_symlink(self.path):  # --root / and the "ID" bin, say
                raise NotAContainer(self.path, "it is a symbolic link") from None
            if lean.is_dir(self.root):
                raise ContainerNotFound(self.id) from None  # a stray file of that name
            raise root_not_a_directory(self.root) from None
        except OSError as e:
            raise io_error("cannot open state directory", self.path, e) from None

    def _lock(self) -> None:
        self._open_fd()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._locked()

    def _try_lock(self, wait: float) -> bool:
        """Non-blocking attempts for up to `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.005)
                continue
            self._locked()
            return True

    def _locked(self) -> None:
        # The directory may have been removed (and even made again by a new create of the same
        # ID) while we waited: our fd must still be the directory at the path.
        if self.removed():
            self.unlock()
            raise ContainerNotFound(self.id)
        self.locked = True
        _hold_interruptible(self.id)

    def removed(self) -> bool:
        """True once the directory we hold is no longer the one at the path."""
        try:
            here, there = posix.fstat(self._fd), posix.stat(self.path)
        except OSError:
            return True
        return here.st_nlink == 0 or (here.st_ino, here.st_dev) != (there.st_ino, there.st_dev)

    def unlock(self) -> None:
        if self._fd >= 0:
            posix.close(self._fd)
            self._fd = -1
        if self.locked:
            self.locked = False
            _release_interruptible()

    def file(self, name: str) -> str:
        return lean.join(self.path, name)

    def dir_fd(self) -> int | None:
        return self._fd if self._fd >= 0 else None

    # --- the state file ----------------------------------------------------------------
    def save(self, data: dict) -> None:
        self.write(STATE_FILE, jsonio.dumps(data).encode())

    def update(self, data: dict) -> None:
        """save() over create's state.json: swapped with it (linux/kernel.py swap_names)."""
        from ociruntime.linux.kernel import swap_names

        self.write(STATE_FILE, jsonio.dumps(data).encode(), swap_names)

    # `exec` needs the config as it was at create: later edits of config.json MUST NOT matter.
    def save_config(self, raw: dict) -> None:
        self.write(CONFIG_COPY, jsonio.dumps(raw).encode())

    def write(self, name: str, data: bytes, swap=None) -> None:
        try:
            write_atomic(name if self._fd >= 0 else self.file(name), data, 0o600, self.dir_fd(), swap)
        except FileNotFoundError:
            raise OciError(f"container {self.id!r} was deleted meanwhile (a forced delete): "
                           f"cannot write {self.file(name)}") from None
        except OSError as e:
            raise io_error("cannot write", self.file(name), e) from None

    def load(self) -> dict:
        """What create recorded, checked field by field; a directory without state.json is a
        container being created. A corrupt file raises OciError naming the file and the flaw."""
        return self._through_fd(self._load)

    def saved_config(self) -> object:
        """The config.json create kept (`exec` runs with it, whatever became of the bundle's),
        parsed by jsonfile.read_document."""
        from ociruntime import jsonfile

        def read() -> object:
            return jsonfile.read_document(self.file(CONFIG_COPY), "create's copy of config.json", dir_fd=self._fd)

        return self._through_fd(read)

    def _through_fd(self, read):
        """read() through the directory's fd, opened here (O_NOFOLLOW) if the command holds none:
        the directory is resolved once, and known to be ours (load's checks) before it is read."""
        if self._fd >= 0:
            return read()
        self._open_fd()
        try:
            return read()
        finally:
            posix.close(self._fd)
            self._fd = -1

    def _load(self) -> dict:
        path = self.file(STATE_FILE)
        self.check_own()
        self._check_owner()
        try:
            fd = posix.open(STATE_FILE, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK, dir_fd=self._fd)
        except FileNotFoundError:
            if not self.removed():  # the directory we opened, still at its path
                return {"id": self.id, "creating": True}
            raise ContainerNotFound(self.id) from None
        except OSError as e:
            raise io_error("cannot open", path, e) from None
        try:
            raw = _read_all(fd, path)
        finally:
            posix.close(fd)
        try:
            data = jsonio.loads(raw)
        except ValueError as e:  # UnicodeDecodeError is one too
            raise OciError(f"{path}: corrupt state file: {e}") from None
        problem = check_state(data)
        if problem:
            raise OciError(f"{path}: corrupt state file: {problem}")
        assert isinstance(data, dict)
        return data

    def load_salvage(self) -> tuple[dict, str | None]:
        """For delete --force and list: whatever can be trusted, and what was wrong. Fields
        with a wrong type are dropped (a pid we cannot check is never signalled)."""
        try:
            return self.load(), None
        except (ContainerNotFound, NotAContainer):
            raise
        except OciError as e:
            problem = str(e)
        data = {}
        try:
            doc = jsonio.loads(self._through_fd(self._read_raw_state), lenient=True)
            if isinstance(doc, dict):
                data = {k: v for k, v in doc.items() if not _field_problem(k, v) and _encodable(v)}
        except (OSError, ValueError):
            pass
        if "pid" not in data or "start_time" not in data:
            data.pop("pid", None)
            data.pop("start_time", None)
        return data, problem + _what_is_lost(data)

    def _read_raw_state(self) -> bytes:
        # Non-blocking, as load(): a FIFO named state.json must not hang delete -f.
        fd = posix.open(STATE_FILE, posix.O_RDONLY | posix.O_CLOEXEC | posix.O_NONBLOCK, dir_fd=self._fd)
        try:
            return posix.read(fd, 1 << 20)
        finally:
            posix.close(fd)

    def entries(self) -> list[str]:
        fd = self.dir_fd()
        try:
            return posix.listdir(fd if fd is not None else self.path)
        except (FileNotFoundError, NotADirectoryError):  # load() says which
            return []
        except OSError as e:
            raise io_error("cannot list", self.path, e) from None

    def check_own(self, names: list[str] | None = None) -> None:
        """Raise NotAContainer unless every entry is a file the runtime makes (see OWN_FILES):
        load() checks it, so no command reads, signals or removes what a foreign directory names."""
        names = self.entries() if names is None else names
        if OWN_FILES.issuperset(names):
            return
        foreign = sorted(n for n in names if not is_own_file(n))
        if foreign:
            raise NotAContainer(self.path, f"it holds {foreign[0]!r}, which ociruntime never makes there")

    def _check_owner(self) -> None:
        """A record only its own user could have written: one that another user made (or may
        rewrite) could name any process or cgroup for us to signal, kill or remove."""
        st, uid = posix.fstat(self._fd), posix.geteuid()
        if st.st_uid != uid:
            raise NotAContainer(self.path, f"it belongs to uid {st.st_uid}, not to uid {uid} who runs this")
        if st.st_mode & 0o022:
            raise NotAContainer(self.path, f"others may write into it (mode {st.st_mode & 0o7777:o})")

    def remove(self) -> None:
        """Every file, state.json last (so a delete killed half-way leaves a directory that
        still says what is left to undo), then the directory. Gone already is fine. Only our
        own files are unlinked: a directory that holds anything else stays, with an error."""
        names = self.entries()
        self.check_own(names)
        names.sort(key=lambda n: n == STATE_FILE)
        for name in names:
            self._unlink(name)
        if self.dir_fd() is not None and self.removed():
            self.unlock()
            return
        for _ in range(20):
            try:
                posix.rmdir(self.path)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != 39:  # ENOTEMPTY: a lock holder wrote a file meanwhile
                    raise io_error("cannot remove", self.path, e) from None
                names = self.entries()
                self.check_own(names)
                for name in names:
                    self._unlink(name)
        self.unlock()

    def _unlink(self, name: str) -> None:
        fd = self.dir_fd()
        try:
            posix.unlink(name if fd is not None else self.file(name), dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise io_error("cannot remove", self.file(name), e) from None


def _what_is_lost(data: dict) -> str:
    """What delete -f cannot undo for want of a trustworthy record."""
    if "pid" in data and data.get("cgroup"):
        return ""
    if data.get("cgroup"):
        return "; its init is not signalled by pid, only as a member of its cgroups"
    if "pid" in data:
        return "; its cgroups cannot be identified from it and are left alone"
    return "; its init and its cgroups cannot be identified from it and are left alone"


def _encodable(value: object) -> bool:
    """No lone surrogate anywhere in it (what a lenient parse of a damaged file may leave)."""
    try:
        jsonio.refuse_lone_surrogates(value)
    except ValueError:
        return False
    return True


def _read_all(fd: int, path: str) -> bytes:
    chunks = []
    try:
        while chunk := posix.read(fd, 65536):
            chunks.append(chunk)
            if len(chunks) > 64:
                raise OciError(f"{path}: corrupt state file: larger than 4 MiB")
    except BlockingIOError:
        raise OciError(f"{path}: corrupt state file: not a regular file") from None
    except OSError as e:
        raise io_error("cannot read", path, e) from None
    return b"".join(chunks)


# Fields other code relies on, and the types it relies on.
_INT_FIELDS = ("pid", "start_time", "pidns", "host_pidns")
_DICT_FIELDS = ("cgroup", "hooks", "annotations")
_STR_FIELDS = ("id", "bundle", "rootfs", "created", "ociVersion")


def _field_problem(key: str, value: object) -> str | None:
    if key in _INT_FIELDS and (type(value) is not int):
        return f"{key} is {value!r}, not a number"
    if key in _DICT_FIELDS and value is not None and not isinstance(value, dict):
        return f"{key} is {value!r}, not an object"
    if key in _STR_FIELDS and not isinstance(value, str):
        return f"{key} is {value!r}, not a string"
    if key == "exec_pids" and not (isinstance(value, list) and all(
            isinstance(e, list) and len(e) == 2 and all(type(n) is int for n in e) for e in value)):
        return "exec_pids is not a list of [pid, start time]"
    if key == "hooks" and value and not all(
            isinstance(v, list) and all(isinstance(h, dict) and isinstance(h.get("path"), str) for h in v)
            for v in value.values()):  # type: ignore[union-attr]
        return "hooks is not a list of hooks per kind"
    return None


def check_state(data: object) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    for key, value in data.items():
        problem = _field_problem(key, value)
        if problem:
            return problem
    return None


def write_atomic(path: str, data: bytes, mode: int = 0o644, dir_fd: int | None = None, swap=None) -> None:
    """Write to a temporary file in the same directory, fsync-free rename over the target.
    With dir_fd, `path` is relative to it. OSError (ENOSPC, EROFS...) is the caller's to word;
    the temporary file never stays behind. Its name is guessable (a pid), and the directory may be
    one others write into (--pid-file in /tmp): O_EXCL never opens what is there, a link planted
    to make root write through it included. What is there is removed (a link, not its target;
    or what a process of the same pid left when it was killed) and the file made anew. swap(tmp,
    path, dir_fd) -> True: the names were swapped instead (the old file is removed by tmp)."""
    tmp = f"{path}.{posix.getpid()}.tmp"
    flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_CLOEXEC
    try:
        fd = posix.open(tmp, flags, mode, dir_fd=dir_fd)
    except FileExistsError:
        posix.unlink(tmp, dir_fd=dir_fd)
        fd = posix.open(tmp, flags, mode, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[posix.write(fd, view):]
        finally:
            posix.close(fd)
        if swap is not None and swap(tmp, path, dir_fd):
            posix.unlink(tmp, dir_fd=dir_fd)
        else:
            posix.rename(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            posix.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


# --- the lock's holder ---------------------------------------------------------------------
def lock_holders(fd: int) -> list[int]:
    """pids holding a flock on the file behind fd, from /proc/locks (waiters, "->", excluded)."""
    st = posix.fstat(fd)
    dev_ino = f"{posix.major(st.st_dev):02x}:{posix.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    pids = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == dev_ino and fields[4].isdigit():
            pid = int(fields[4])
            # 0: a holder in a pid namespace we cannot see (kill(0) would hit our own group).
            if pid > 0 and pid != posix.getpid():
                pids.append(pid)
    return pids


def _pin_holders(fd: int) -> list[int]:
    """pidfds of the lock's holders, each checked to still hold it after it was pinned: a pid
    read from /proc/locks could be recycled before we signal it; a pidfd cannot."""
    pinned = []
    for pid in lock_holders(fd):
        try:
            pinned.append((pid, posix.pidfd_open(pid)))
        except OSError:
            pass
    still = set(lock_holders(fd))
    keep = []
    for pid, pidfd in pinned:
        if pid in still:
            keep.append(pidfd)
        else:
            posix.close(pidfd)
    return keep


def _signal_all(pidfds: list[int], signum: int) -> None:
    for pidfd in pidfds:
        try:
            _signal.pidfd_send_signal(pidfd, signum)
        except OSError:
            pass


def _wait_dead(pidfds: list[int], timeout: float) -> None:
    """Until every pidfd reads as exited (POLLIN), or timeout."""
    import select

    poller = select.poll()
    for pidfd in pidfds:
        poller.register(pidfd, select.POLLIN)
    remaining, deadline = len(pidfds), time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        for pidfd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            poller.unregister(pidfd)
            remaining -= 1


# While a command holds a lock, SIGTERM (what delete --force sends) becomes Interrupted: the
# command unwinds through its undo path and reports one line, instead of dying half-way.
_holder: dict = {"pid": 0, "id": ""}


def _on_sigterm(signum: int, _frame: object) -> None:
    _signal.signal(signum, _signal.SIG_DFL)  # once: a second SIGTERM terminates
    if posix.getpid() != _holder["pid"]:
        # A child forked while we held the lock, before it reset its handlers: behave as the
        # default disposition would (the kernel still protects a pid namespace's init).
        posix.kill(posix.getpid(), signum)
        return
    raise Interrupted(f"container {_holder['id']!r}: interrupted by SIGTERM (a forced delete sends it "
                      "to the command holding the container's lock)")


def _hold_interruptible(cid: str) -> None:
    _holder["pid"], _holder["id"] = posix.getpid(), cid
    try:
        previous = _signal.signal(SIGTERM, _on_sigterm)
    except ValueError:
        return  # the Python API called from a thread other than the main one: not interruptible
    if previous is not _on_sigterm:
        _holder["previous"] = previous


def _release_interruptible() -> None:
    """The SIGTERM disposition the caller had (a program using the Python API keeps its own)."""
    if _signal.getsignal(SIGTERM) is _on_sigterm or "previous" in _holder:
        try:
            _signal.signal(SIGTERM, _holder.pop("previous", None) or _signal.SIG_DFL)
        except ValueError:
            pass


def reset_child_signals() -> None:
    """In a child just forked by a lock holder: SIGTERM is the default again."""
    _holder["pid"] = 0
    _signal.signal(SIGTERM, _signal.SIG_DFL)


# --- the kernel's view ---------------------------------------------------------------------
def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat from the third (state) on; None if it cannot be read."""
    stat = lean.read_small(f"/proc/{pid}/stat")  # ~0.3 kB, at most ~1 kB: 52 numbers and a name
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    end = stat.rfind(b")")
    return stat[end + 2:].split() if end > 0 else None


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot); None if gone or a zombie."""
    fields = _stat_fields(pid) if pid > 0 else None
    if fields is None or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def process_state(pid: int) -> str:
    """The one-letter state of /proc/<pid>/stat (R, S, T, Z...), "" if gone."""
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else ""


def is_exiting(pid: int) -> bool:
    """PF_EXITING in the flags of /proc/<pid>/stat (or gone): killed, and past the point of
    leaving its cgroup and namespaces' processes behind."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in (b"Z", b"X") or bool(int(fields[6]) & 0x4)


def is_same_process(pid: int, start_time: int) -> bool:
    return pid > 0 and process_start_time(pid) == start_time


def pid_namespace(pid: int | str) -> int:
    """The inode of a process's pid namespace; 0 if it has gone."""
    try:
        return posix.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return 0


class Locked:
    """`with state.locked(root, cid) as held:` the container's directory under its lock, what
    create recorded (held.data) and its status from the kernel (held.status); the lock is
    released on leaving the block, whatever happens inside it."""

    __slots__ = ("data", "sd", "status")

    def __init__(self, root: str, container_id: str) -> None:
        self.sd = StateDir.open(root, container_id)
        try:
            self.data = self.sd.load()
            self.status = status_of(self.sd, self.data)
        except BaseException:
            self.sd.unlock()
            raise

    def __enter__(self) -> "Locked":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sd.unlock()


def locked(root: str, container_id: str) -> Locked:
    return Locked(root, container_id)


def status_of(d: StateDir, data: dict) -> str:
    """creating / created / running / paused / stopped, from the kernel; never a recorded status.
    `creating` marks a state file written while `create` is still building the container (or
    left by a create that was killed: delete -f removes it)."""
    if data.get("creating"):
        return "creating"
    if not is_same_process(data.get("pid", 0), data.get("start_time", -1)):
        return "stopped"
    if lean.exists(d.file(EXEC_FIFO)):
        return "created"
    if data.get("cgroup") and _frozen(data["cgroup"]):
        return "paused"
    return "running"


def _frozen(cgroup_state: dict) -> bool:
    from ociruntime.linux import freezer  # not the cgroup drivers: see there

    try:
        return freezer.frozen(cgroup_state)
    except (KeyError, TypeError, AttributeError):
        return False  # a state file edited by hand: not frozen, as any other unreadable cgroup
