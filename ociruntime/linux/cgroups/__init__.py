"""Control groups: layout detection, the manager interface and the factory.

`manager()` picks a driver for the host (cgroup v1 or hybrid -> v1.py, pure v2 -> v2.py,
`systemd=True` -> systemd.py) and `from_state()` rebuilds one from what `to_state()` saved.

This module is imported on the `state`/`kill`/`delete` path, so it imports only `os` and the error
types; drivers are imported lazily by the factory. All file access goes through `write_file` and
`read_file`, which use raw fds (no io stack) and turn failures into CgroupError naming the file.
"""

from __future__ import annotations

import os

from ociruntime.errors import CgroupError

__all__ = [
    "DEFAULT_DEVICE_RULES",
    "CgroupError",
    "CgroupManager",
    "Layout",
    "from_state",
    "manager",
    "parse_mountinfo",
    "read_layout",
    "with_default_devices",
]

MOUNTINFO = "/proc/self/mountinfo"
SELF_CGROUP = "/proc/self/cgroup"

# Mount options of a v1 cgroup mount that are not controller names.
_V1_OPTIONS = frozenset(
    ("rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods",
     "nosuid", "nodev", "noexec", "relatime")
)

# Devices a container always gets in the device cgroup (runtime-spec "Default Devices" plus
# mknod of anything, /dev/pts/* and /dev/ptmx), as spec-shaped allow rules. The caller appends
# them after the config's own rules (see with_default_devices) -- the library does not add them
# behind the caller's back.
DEFAULT_DEVICE_RULES: tuple[dict, ...] = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},    # null
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},    # zero
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},    # full
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},    # random
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},    # urandom
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},    # tty
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # ptmx
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},              # pts/*
)


def with_default_devices(rules: list | None, devices: list | None = None) -> list:
    """The device-cgroup rule list for a container: the config's `linux.resources.devices`, then
    the default devices, then an allow rule for every `linux.devices` entry (the spec makes them
    usable in the container)."""
    out = list(rules or ())
    out.extend(DEFAULT_DEVICE_RULES)
    for dev in devices or ():
        if dev.get("type") in ("c", "b", "u"):
            kind = "c" if dev["type"] == "u" else dev["type"]
            out.append({"allow": True, "type": kind, "major": dev.get("major"),
                        "minor": dev.get("minor"), "access": "rwm"})
    return out


# ---------------------------------------------------------------- file access


def reason(err: OSError) -> str:
    """strerror in the lower-case style runc and the rest of our messages use."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


def fail(what: str, err: OSError) -> CgroupError:
    """A CgroupError for `what` ("write 5 to /x", "mkdir /y") that remembers the errno."""
    exc = CgroupError(f"cgroup: {what}: {reason(err)}")
    exc.errno = err.errno  # type: ignore[attr-defined]
    return exc


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
        if getattr(e, "errno", None) == 2:  # ENOENT: the cgroup is already gone
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


# ---------------------------------------------------------------- layout


class Layout:
    """Where the cgroup hierarchies are mounted.

    `v1` maps a hierarchy key -- its controllers as mounted, comma-joined ("cpu,cpuacct",
    "memory", "name=systemd") -- to (mount point, mount root). `unified` is the cgroup2 mount,
    if any. `mode` is "v1", "v2" (unified only) or "hybrid" (both)."""

    __slots__ = ("unified", "v1")

    def __init__(self, v1: dict[str, tuple[str, str]], unified: tuple[str, str] | None) -> None:
        self.v1 = v1
        self.unified = unified

    @property
    def mode(self) -> str:
        if self.v1:
            return "hybrid" if self.unified else "v1"
        return "v2" if self.unified else "none"

    def controller_key(self, controller: str) -> str | None:
        for key in self.v1:
            if controller in key.split(","):
                return key
        return None

    def __repr__(self) -> str:
        return f"Layout(v1={self.v1!r}, unified={self.unified!r})"


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> Layout:
    """Find the cgroup mounts in /proc/self/mountinfo text.

    The first mount of each v1 hierarchy wins (bind mounts of the same hierarchy elsewhere are
    ignored). Named hierarchies other than name=systemd are skipped: nothing in the spec uses
    them and joining them would only move the process around in someone else's tree. Among
    several cgroup2 mounts, /sys/fs/cgroup and then /sys/fs/cgroup/unified are preferred."""
    v1: dict[str, tuple[str, str]] = {}
    unified: list[tuple[str, str]] = []
    for line in text.splitlines():
        if " - cgroup" not in line:
            continue
        head, _, tail = line.partition(" - ")
        fields = head.split(" ")
        fstype, _, rest = tail.partition(" ")
        if len(fields) < 5:
            continue
        root, point = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2":
            unified.append((point, root))
        elif fstype == "cgroup":
            opts = rest.rpartition(" ")[2].split(",")
            ctrls = [o for o in opts if o not in _V1_OPTIONS and "=" not in o]
            ctrls += [o for o in opts if o == "name=systemd"]
            if ctrls:
                v1.setdefault(",".join(ctrls), (point, root))
    chosen = None
    for pref in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        chosen = chosen or next((u for u in unified if u[0] == pref), None)
    if chosen is None and unified:
        chosen = unified[0]
    return Layout(v1, chosen)


def read_layout() -> Layout:
    return parse_mountinfo(read_file(MOUNTINFO))


def parse_self_cgroup(text: str) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {controller: path}; the v2 entry ("0::/x") is under key ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else ("",):
            out[c] = path
    return out


def hierarchy_dir(mount: tuple[str, str], path: str, own: str | None) -> str:
    """The directory of cgroups path `path` in a hierarchy mounted at mount=(point, root).

    Absolute paths are taken from the mount point (runc does the same). Relative paths are
    appended to the runtime's own cgroup `own` (from /proc/self/cgroup, relative to the cgroup
    namespace root, like the mount root), minus the part above the mount root."""
    point, root = mount
    if path.startswith("/"):
        return point.rstrip("/") + path if path != "/" else point
    base = own or "/"
    if root != "/" and (base == root or base.startswith(root + "/")):
        base = base[len(root):] or "/"
    return (point.rstrip("/") + base).rstrip("/") + "/" + path


def rootless_view(paths: dict[str, str]) -> dict[str, str]:
    """The directories a rootless container's cgroup mount shows: its own cgroups (`paths`),
    and in each hierarchy where it has none (not delegated: skipped), the cgroup it runs in,
    which is ours. runc shows the same."""
    layout = parse_mountinfo(read_file(MOUNTINFO))
    own = parse_self_cgroup(read_file(SELF_CGROUP))
    hierarchies = dict(layout.v1)
    if layout.unified:
        hierarchies[""] = layout.unified
    view = dict(paths)
    for key, mount in hierarchies.items():
        if key not in view:
            view[key] = hierarchy_dir(mount, "", own.get(key.split(",")[0])).rstrip("/") or "/"
    return view


# ---------------------------------------------------------------- interface


class CgroupManager:
    """What every driver implements. Drivers are cheap to construct; nothing touches the
    filesystem until apply()/set()."""

    driver = "none"
    # Rootless (--rootless, see linux/rootless.py): cgroups that are not delegated to us are
    # skipped; a resource the config asks for in a skipped cgroup is still an error.
    rootless = False

    def __init__(self) -> None:
        # Settings a driver accepted but could not apply on this host (e.g. swappiness on v2).
        # The caller may log them; the library never prints.
        self.warnings: list[str] = []

    def may_skip(self, err: CgroupError, path: str) -> bool:
        """Rootless: a cgroup not delegated to us (EPERM, EACCES, EROFS) is not used, with a
        debug line; any other failure, or a runtime that is not rootless, is an error."""
        if not (self.rootless and getattr(err, "errno", None) in (1, 13, 30)):
            return False
        from ociruntime import log

        log.debug(f"rootless: cgroup {path} not used (not delegated to this user): {err}")
        return True

    def skip_all(self) -> None:
        """Rootless, nothing delegated (the systemd driver without a user systemd): use no
        cgroup; the container stays in the caller's, and a resource asked for is an error."""
        raise NotImplementedError

    def set_devices(self, rules: list) -> None:
        """The device rules. Rootless, best effort (runc's rule): loading the v2 device filter
        (BPF) or writing v1's devices.deny needs CAP_SYS_ADMIN in the host's user namespace,
        which no delegation gives; such a container only has device nodes bound from the host,
        guarded by the host's own permissions."""
        try:
            self._devices(rules)
        except CgroupError as e:
            if not self.rootless:
                raise
            from ociruntime import log

            log.debug(f"rootless: device cgroup rules not applied: {e}")

    def _devices(self, rules: list) -> None:
        raise NotImplementedError

    def create(self) -> None:
        """Create the cgroup directories without moving any process (idempotent)."""
        raise NotImplementedError

    def procs_files(self) -> list[str]:
        """cgroup.procs of every cgroup to join; writing "0" to one moves the writer itself."""
        raise NotImplementedError

    def apply(self, pid: int) -> None:
        """create(), then move `pid` (cgroup.procs) into all of the cgroups."""
        raise NotImplementedError

    def set(self, resources: dict | None) -> None:
        """Apply linux.resources (the raw dict from config.json)."""
        raise NotImplementedError

    def destroy(self) -> None:
        """Remove the cgroups this container created (and parents it created, if unused);
        a cgroup that existed before create is left alone. Idempotent."""
        raise NotImplementedError

    def plan(self) -> None:
        """Record (in `made`, saved by to_state) the directories create() is about to make,
        before making them: only those are ever removed."""
        raise NotImplementedError

    def owned(self) -> bool:
        """True when this container created every one of its cgroup directories: then every
        process in them is the container's. A joined, pre-existing cgroup may hold others'."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def kill_all(self) -> bool:
        """SIGKILL every process in the cgroup and its descendants in one step (cgroup v2's
        cgroup.kill: no fork can slip between reading the list and signalling it) and wait
        until it is empty. False when the kernel or driver has no such file; the caller then
        signals the pids one by one. Only for a cgroup the container owns (see owned())."""
        return False

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        """True when frozen (or freezing): `state` reports the container as paused."""
        raise NotImplementedError

    def stats(self) -> dict:
        raise NotImplementedError

    def to_state(self) -> dict:
        raise NotImplementedError

    def paths(self) -> dict[str, str]:
        """{hierarchy key: directory}: "" is the unified hierarchy (runc's state.json shape)."""
        raise NotImplementedError

    def exists(self) -> bool:
        """True while the container's cgroup directory is still there."""
        return any(os.path.isdir(p) for p in self.paths().values())

    def clone_target(self) -> int:
        """An fd of the one directory a child can be cloned straight into (CLONE_INTO_CGROUP),
        the cgroup created; -1 when the container's cgroup is not a single v2 directory (v1 or
        hybrid hierarchies, systemd's scope made from a pid): then apply() moves the child."""
        return -1


def manager(
    cgroups_path: str | None,
    container_id: str,
    *,
    systemd: bool = False,
    rootless: bool = False,
    layout: Layout | None = None,
    mountinfo: str | None = None,
    own_cgroup: str | None = None,
) -> CgroupManager:
    """The manager for a container's cgroup.

    cgroups_path: absolute -> from each hierarchy's root; relative -> below the runtime's own
    cgroup; None -> the container id, relative (what runc does). With systemd=True it is
    "slice:prefix:name" (default "system.slice:ociruntime:<id>").
    layout/mountinfo/own_cgroup let a caller share what it already read (/proc/self/mountinfo,
    /proc/self/cgroup) so they are read at most once."""
    if layout is None:
        layout = parse_mountinfo(mountinfo if mountinfo is not None else read_file(MOUNTINFO))
    if layout.mode == "none":
        raise CgroupError("cgroup: no cgroup filesystem is mounted (see /proc/self/mountinfo)")
    if systemd:
        from ociruntime.linux.cgroups import systemd as driver

        return driver.manager(cgroups_path, container_id, layout, rootless=rootless)
    # The id is cleaned too: an id like "../x" must not climb out of our own cgroup.
    path = clean_path(cgroups_path or container_id)
    if path in ("", "/", "."):
        raise CgroupError(f"cgroup: invalid cgroupsPath {cgroups_path!r}")
    own: dict[str, str] = {}
    if not path.startswith("/"):
        own = parse_self_cgroup(own_cgroup if own_cgroup is not None else read_file(SELF_CGROUP))
        if rootless and layout.mode == "v2" and own.get("", "/") != "/":
            # An ordinary user's runtime runs in a scope of its session that holds processes
            # (podman's, conmon): no controller could be enabled below it (the v2 "no internal
            # processes" rule). Its parent, a slice of the user's delegated tree, is where the
            # container's cgroup goes, as runc puts it.
            own[""] = os.path.dirname(own[""])
    return build(layout, path, own, rootless=rootless)


def build(layout: Layout, path: str, own: dict[str, str], *, rootless: bool) -> CgroupManager:
    """A v1 or v2 manager for `path` (already cleaned) in `layout`."""
    if layout.mode == "v2":
        from ociruntime.linux.cgroups.v2 import V2Manager

        assert layout.unified is not None
        return V2Manager(hierarchy_dir(layout.unified, path, own.get("")), layout.unified[0],
                         rootless=rootless)
    from ociruntime.linux.cgroups.v1 import V1Manager

    dirs = {key: hierarchy_dir(mount, path, own.get(key.split(",")[0]))
            for key, mount in layout.v1.items()}
    if layout.unified:
        # Hybrid: join the unified hierarchy too (runc does; systemd and hugetlb-on-v2 need it).
        dirs[""] = hierarchy_dir(layout.unified, path, own.get(""))
    return V1Manager(dirs, unified_mount=layout.unified[0] if layout.unified else None,
                     rootless=rootless)


def from_state(data: dict) -> CgroupManager:
    """Rebuild a manager from to_state() output without reading mountinfo again."""
    driver = data.get("driver")
    if driver == "v1":
        from ociruntime.linux.cgroups.v1 import V1Manager

        return V1Manager.from_state(data)
    if driver == "v2":
        from ociruntime.linux.cgroups.v2 import V2Manager

        return V2Manager.from_state(data)
    if driver == "systemd":
        from ociruntime.linux.cgroups import systemd as sd

        return sd.from_state(data)
    raise CgroupError(f"cgroup: unknown driver {driver!r} in saved state")
