"""What the kernel says isolates a process: its namespaces, ids, capabilities, seccomp, LSM label,
rlimits, mounts and cgroups, read from /proc/<pid> and cgroupfs. Nothing here reads a config.

Every /proc file is opened relative to one fd of the /proc/<pid> directory, checked to be the
process we were told about (its start time): if that process exits and its pid is reused, reads
through the fd fail instead of describing the new process. Imports only os and the cgroup
helpers (which import only os): `inspect` is a read-only debugging command.
"""

from __future__ import annotations

import os

from ociruntime.linux import cgroups
from ociruntime.linux.caps import CAPABILITIES
from ociruntime.linux.cgroups.layout import unescape
from ociruntime.spectables import NS_LINK_NAMES

# (/proc/<pid>/ns link name, runtime-spec namespace type), in nsenter's option order.
NAMESPACES = tuple((NS_LINK_NAMES[t], t) for t in ("mount", "uts", "ipc", "network", "pid", "cgroup", "user", "time"))
NSENTER_OPTION = {"mnt": "--mount", "uts": "--uts", "ipc": "--ipc", "net": "--net", "pid": "--pid",
                  "cgroup": "--cgroup", "user": "--user", "time": "--time"}
CAP_NAMES = {number: name for name, number in CAPABILITIES.items()}
CAP_SETS = (("CapInh", "inheritable"), ("CapPrm", "permitted"), ("CapEff", "effective"),
            ("CapBnd", "bounding"), ("CapAmb", "ambient"))
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}
RLIM_INFINITY = (1 << 64) - 1
# The row names of /proc/<pid>/limits (fs/proc/base.c) -> setrlimit(2) resource names.
RLIMIT_ROWS = {
    "Max cpu time": "RLIMIT_CPU", "Max file size": "RLIMIT_FSIZE", "Max data size": "RLIMIT_DATA",
    "Max stack size": "RLIMIT_STACK", "Max core file size": "RLIMIT_CORE",
    "Max resident set": "RLIMIT_RSS", "Max processes": "RLIMIT_NPROC",
    "Max open files": "RLIMIT_NOFILE", "Max locked memory": "RLIMIT_MEMLOCK",
    "Max address space": "RLIMIT_AS", "Max file locks": "RLIMIT_LOCKS",
    "Max pending signals": "RLIMIT_SIGPENDING", "Max msgqueue size": "RLIMIT_MSGQUEUE",
    "Max nice priority": "RLIMIT_NICE", "Max realtime priority": "RLIMIT_RTPRIO",
    "Max realtime timeout": "RLIMIT_RTTIME",
}
OVERFLOW_ID = 65534  # what an id without a mapping shows as (/proc/sys/kernel/overflowuid)


class ProcessGone(Exception):
    """The process exited while it was being read (or is not the one we were told about)."""


class Proc:
    """/proc/<pid> held by an fd; `with Proc(pid, start_time) as p`."""

    __slots__ = ("fd", "pid")

    def __init__(self, pid: int, start_time: int | None = None) -> None:
        self.pid = pid
        try:
            self.fd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise ProcessGone(pid) from None
        if start_time is not None and self.start_time() != start_time:
            self.close()
            raise ProcessGone(pid)

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def read(self, name: str) -> str:
        """A file of /proc/<pid>; ProcessGone if the process has exited, OSError otherwise."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        except (FileNotFoundError, ProcessLookupError):
            raise ProcessGone(self.pid) from None
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        except ProcessLookupError:
            raise ProcessGone(self.pid) from None
        finally:
            os.close(fd)
        return b"".join(chunks).decode(errors="replace")

    def read_optional(self, name: str) -> str | None:
        """None when the kernel does not offer the file or refuses it (EINVAL, EACCES)."""
        try:
            return self.read(name)
        except ProcessGone:
            if os.path.exists(f"/proc/self/{name}"):
                raise
            return None
        except OSError:
            return None

    def stat_fields(self) -> list[str]:
        """Fields 3.. of stat (the command name, which may hold spaces, cut off)."""
        text = self.read("stat")
        return text[text.rindex(")") + 2:].split()

    def start_time(self) -> int:
        return int(self.stat_fields()[19])

    def ns_inode(self, name: str) -> int | None:
        try:
            return os.stat(f"ns/{name}", dir_fd=self.fd).st_ino
        except FileNotFoundError:
            return None  # a namespace type this kernel does not have
        except ProcessLookupError:
            raise ProcessGone(self.pid) from None


# ---------------------------------------------------------------- /proc/<pid>/status


def status(p: Proc) -> dict[str, str]:
    out = {}
    for line in p.read("status").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def cap_names(mask: int) -> list[str]:
    return [CAP_NAMES.get(bit, f"CAP_{bit}") for bit in range(64) if mask >> bit & 1]


def capabilities(st: dict[str, str]) -> dict[str, list[str]]:
    return {name: cap_names(int(st.get(key, "0"), 16)) for key, name in CAP_SETS}


def security(p: Proc, st: dict[str, str]) -> dict:
    mode = int(st.get("Seccomp", "0") or 0)
    label = p.read_optional("attr/current")
    return {
        "capabilities": capabilities(st),
        "no_new_privs": st.get("NoNewPrivs") == "1",
        "seccomp": {"mode": SECCOMP_MODES.get(mode, str(mode)),
                    "filters": int(st.get("Seccomp_filters", "0") or 0)},
        "lsm_label": label.rstrip("\0\n") if label else None,
    }


# ---------------------------------------------------------------- users


def id_map(text: str) -> list[dict[str, int]]:
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3:
            out.append({"container_id": int(fields[0]), "host_id": int(fields[1]), "size": int(fields[2])})
    return out


def inside_id(host_id: int, mappings: list[dict[str, int]]) -> int:
    """The id as the process sees it in its user namespace (uid_map read from the parent's)."""
    for m in mappings:
        if m["host_id"] <= host_id < m["host_id"] + m["size"]:
            return m["container_id"] + host_id - m["host_id"]
    return OVERFLOW_ID


def users(p: Proc, st: dict[str, str]) -> dict:
    uid_map, gid_map = id_map(p.read("uid_map")), id_map(p.read("gid_map"))
    uids = [int(x) for x in st.get("Uid", "").split()]  # real, effective, saved, filesystem
    gids = [int(x) for x in st.get("Gid", "").split()]
    groups = [int(x) for x in st.get("Groups", "").split()]
    return {
        "uid_map": uid_map, "gid_map": gid_map,
        "host": {"uid": uids[1], "gid": gids[1], "groups": groups,
                 "uids": uids, "gids": gids},
        "container": {"uid": inside_id(uids[1], uid_map), "gid": inside_id(gids[1], gid_map),
                      "groups": [inside_id(g, gid_map) for g in groups]},
    }


# ---------------------------------------------------------------- rlimits


def rlimits(text: str) -> dict[str, dict[str, int]]:
    """/proc/<pid>/limits -> {RLIMIT_X: {soft, hard}}; unlimited is RLIM_INFINITY."""
    out = {}
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        values = line[26:].split()
        if name in RLIMIT_ROWS and len(values) >= 2:
            soft, hard = (RLIM_INFINITY if v == "unlimited" else int(v) for v in values[:2])
            out[RLIMIT_ROWS[name]] = {"soft": soft, "hard": hard}
    return out


# ---------------------------------------------------------------- namespaces


def host_namespaces(host: Proc) -> dict[str, int] | None:
    """The namespaces of the host's init (/proc/1), or None where they cannot be read (pid 1
    not dumpable, or in a user namespace above ours)."""
    try:
        return {link: host.ns_inode(link) for link, _ in NAMESPACES}  # type: ignore[misc]
    except PermissionError:
        return None


def namespaces(p: Proc, host: dict[str, int] | None, runtime: Proc) -> list[dict]:
    """Each namespace type: its inode, and whether the process shares it with the host (the
    init of the pid namespace we run in, /proc/1) or with the caller of ociruntime."""
    out = []
    for link, spec_type in NAMESPACES:
        inode = p.ns_inode(link)
        if inode is None:
            continue
        entry = {"type": spec_type, "inode": inode, "shared_with": None}
        if host is not None and inode == host.get(link):
            entry["shared_with"] = "host"
        elif inode == runtime.ns_inode(link):
            entry["shared_with"] = "caller"
        out.append(entry)
    return out


def nsenter_line(pid: int, entries: list[dict], runtime: Proc) -> str:
    """The namespaces that differ from the caller's (setns into one's own user namespace fails)."""
    links = {spec: link for link, spec in NAMESPACES}
    opts = [NSENTER_OPTION[links[e["type"]]] for e in entries
            if e["inode"] != runtime.ns_inode(links[e["type"]])]
    return " ".join(["nsenter", "--target", str(pid), *opts])


def holders(link: str, inode: int, exclude: set[int], limit: int = 3) -> list[dict]:
    """A few processes (pid, command) outside `exclude` in the namespace with this inode."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        try:
            if os.stat(f"/proc/{name}/ns/{link}").st_ino != inode:
                continue
            with open(f"/proc/{name}/comm", "rb") as f:
                comm = f.read().decode(errors="replace").strip()
        except OSError:
            continue
        found.append({"pid": int(name), "command": comm})
        if len(found) >= limit:
            break
    return found


# ---------------------------------------------------------------- mounts


def _propagation(optional: list[str]) -> str:
    kinds = []
    for field in optional:
        tag = field.partition(":")[0]
        if tag in ("shared", "master", "unbindable"):
            kinds.append({"master": "slave"}.get(tag, tag))
    return ",".join(kinds) or "private"


def mounts(text: str) -> list[dict]:
    """/proc/<pid>/mountinfo (proc(5)) as records, paths as the process sees them."""
    out = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields = head.split(" ")
        rest = tail.split(" ")
        if not sep or len(fields) < 6 or len(rest) < 3:
            continue
        out.append({
            "target": unescape(fields[4]), "source": unescape(rest[1]),
            "type": rest[0], "root": unescape(fields[3]),
            "options": fields[5], "super_options": rest[2], "propagation": _propagation(fields[6:]),
        })
    return out


def readonly(mount: dict) -> bool:
    return "ro" in mount["options"].split(",")


def overlay_dirs(mount: dict) -> dict[str, object] | None:
    """lowerdir (a list, top first), upperdir and workdir of an overlay mount."""
    if mount["type"] != "overlay":
        return None
    out: dict[str, object] = {}
    for opt in _split_options(mount["super_options"]):
        key, _, value = opt.partition("=")
        if key == "lowerdir":
            out["lowerdir"] = [d.replace("\\:", ":") for d in _split_unescaped(value, ":")]
        elif key == "lowerdir+":  # the new mount API lists each layer as its own option
            out.setdefault("lowerdir", []).append(value)  # type: ignore[union-attr]
        elif key in ("upperdir", "workdir"):
            out[key] = value
    return out


def _split_options(text: str) -> list[str]:
    return _split_unescaped(text, ",")


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split at `sep` except where it is escaped with a backslash (overlayfs escapes , and :)."""
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if text[i] == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


def mask_kind(mount: dict, root_fd: int) -> str | None:
    """"null" for a read-only bind of a null device file, "tmpfs" for a read-only empty tmpfs
    (the two ways a path is masked); None for anything else. root_fd: /proc/<pid>/root, under
    which the tmpfs is opened without following any symlink (the container owns its tree)."""
    if not readonly(mount) or mount["target"].startswith("/dev/"):
        return None
    if mount["root"].rsplit("/", 1)[-1] == "null" and mount["type"] in ("devtmpfs", "tmpfs"):
        return "null"
    if mount["type"] == "tmpfs" and mount["root"] == "/" and root_fd >= 0:
        return "tmpfs" if _empty_dir(root_fd, mount["target"]) else None
    return None


def open_root(p: Proc) -> int:
    """An O_PATH fd of the process's root directory (its mounts are crossed below it); -1."""
    try:
        return os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=p.fd)
    except OSError:
        return -1


def open_in_root(root_fd: int, path: str, flags: int) -> int:
    """openat2 below root_fd that follows no symlink at all (the tree is the container's, and a
    symlink in it would be resolved against our root); -1 if it cannot be opened."""
    from ociruntime.errors import SetupError
    from ociruntime.linux.kernel import kernel
    from ociruntime.linux.procfs import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS

    if root_fd < 0:
        return -1
    try:
        return kernel().openat2(root_fd, path.lstrip("/") or ".", flags | os.O_CLOEXEC, 0,
                                RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, f"open {path}")
    except SetupError:
        return -1


def exists_in_root(root_fd: int, path: str) -> bool:
    fd = open_in_root(root_fd, path, os.O_PATH)
    if fd >= 0:
        os.close(fd)
    return fd >= 0


def _empty_dir(root_fd: int, path: str) -> bool:
    fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_DIRECTORY)
    if fd < 0:
        return False
    try:
        return not os.listdir(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- cgroups

# Limits a fresh cgroup does not have: (file, what it is, its value when not set). None as the
# unset value: the parent's value (cpuset on v1 is copied from the parent).
_V1_UNLIMITED = "9223372036854771712"  # PAGE_COUNTER_MAX in bytes (4 KiB pages)
V1_LIMITS = (
    ("memory", "memory.limit_in_bytes", _V1_UNLIMITED),
    ("memory", "memory.soft_limit_in_bytes", _V1_UNLIMITED),
    ("memory", "memory.memsw.limit_in_bytes", _V1_UNLIMITED),
    ("cpu", "cpu.shares", "1024"), ("cpu", "cpu.cfs_quota_us", "-1"),
    ("cpu", "cpu.cfs_period_us", "100000"), ("cpu", "cpu.rt_runtime_us", "0"),
    ("cpu", "cpu.idle", "0"), ("cpu", "cpu.cfs_burst_us", "0"),
    ("cpuset", "cpuset.cpus", None), ("cpuset", "cpuset.mems", None),
    ("pids", "pids.max", "max"),
    ("blkio", "blkio.weight", "500"), ("blkio", "blkio.bfq.weight", "100"),
    ("blkio", "blkio.throttle.read_bps_device", ""), ("blkio", "blkio.throttle.write_bps_device", ""),
    ("blkio", "blkio.throttle.read_iops_device", ""), ("blkio", "blkio.throttle.write_iops_device", ""),
)
V2_LIMITS = (
    ("memory", "memory.max", "max"), ("memory", "memory.high", "max"), ("memory", "memory.low", "0"),
    ("memory", "memory.min", "0"), ("memory", "memory.swap.max", "max"),
    ("cpu", "cpu.max", "max 100000"), ("cpu", "cpu.weight", "100"), ("cpu", "cpu.idle", "0"),
    ("cpu", "cpu.max.burst", "0"),
    ("cpuset", "cpuset.cpus", ""), ("cpuset", "cpuset.mems", ""),
    ("pids", "pids.max", "max"),
    ("io", "io.max", ""), ("io", "io.weight", "default 100"), ("io", "io.bfq.weight", "default 100"),
)


def cgroup_dirs(proc_cgroup: str, layout: cgroups.Layout) -> dict[str, str]:
    """/proc/<pid>/cgroup -> {hierarchy key: directory}; "" is the unified hierarchy. Paths the
    process has outside a hierarchy's mount root (another cgroup namespace) are left out."""
    out = {}
    for line in proc_cgroup.splitlines():
        _, ctrls, path = line.split(":", 2)
        if ctrls:
            key = layout.controller_key(ctrls.split(",")[0]) if ctrls != "name=systemd" else ctrls
            mount = layout.v1.get(key) if key else None
        else:
            key, mount = "", layout.unified
        if mount is None or key is None:
            continue
        point, root = mount
        if root != "/" and not (path == root or path.startswith(root + "/")):
            continue
        rel = path[len(root):] if root != "/" else path
        out[key] = point.rstrip("/") + rel if rel != "/" else point
    return out


def _read(path: str) -> str | None:
    try:
        return cgroups.read_file(path).strip()
    except cgroups.CgroupError:
        return None


def _dir_for(dirs: dict[str, str], controller: str, v2: bool) -> str | None:
    if v2:
        return dirs.get("")
    return next((d for key, d in dirs.items() if key and controller in key.split(",")), None)


def cgroup_limits(dirs: dict[str, str], v2: bool) -> dict[str, str]:
    """{file: value} of every limit that is set (differs from a fresh cgroup's)."""
    out = {}
    for controller, name, unset in V2_LIMITS if v2 else V1_LIMITS:
        d = _dir_for(dirs, controller, v2)
        value = _read(f"{d}/{name}") if d else None
        if value is None:
            continue
        if unset is None:
            unset = _read(f"{os.path.dirname(d)}/{name}")  # type: ignore[arg-type]
        if value != unset:
            out[name] = value
    d = _dir_for(dirs, "hugetlb", v2)
    suffix = ".max" if v2 else ".limit_in_bytes"
    for entry in sorted(os.listdir(d)) if d else ():
        if entry.startswith("hugetlb.") and entry.endswith(suffix) and ".rsvd." not in entry:
            value = _read(f"{d}/{entry}")
            if value is not None and value not in ("max", _V1_UNLIMITED):
                out[entry] = value
    return out


def read_limit(dirs: dict[str, str], name: str, v2: bool) -> str | None:
    """The content of limit file `name` (one of the tables') in the container's cgroup."""
    controller = next((c for c, n, _ in (V2_LIMITS if v2 else V1_LIMITS) if n == name), None)
    d = _dir_for(dirs, controller, v2) if controller else None
    return _read(f"{d}/{name}") if d else None


def cpu_list(text: str) -> set[int]:
    """"0-2,5" -> {0, 1, 2, 5} (cpuset lists, which the kernel rewrites in its own form)."""
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit():
            out.update(range(int(first), int(last or first) + 1))
    return out


def cgroup_usage(dirs: dict[str, str], v2: bool) -> dict[str, int]:
    """Current (and peak) usage: memory in bytes, cpu in nanoseconds, pids, io bytes."""
    out: dict[str, int] = {}

    def put(key: str, controller: str, name: str, field: str | None = None) -> None:
        d = _dir_for(dirs, controller, v2)
        if not d:
            return
        if field is None:
            value = _read(f"{d}/{name}")
            if value is not None and value.lstrip("-").isdigit():
                out[key] = int(value)
            return
        try:
            kv = cgroups.read_kv(f"{d}/{name}")
        except cgroups.CgroupError:
            return
        if field in kv:
            out[key] = kv[field]

    if v2:
        put("memory", "memory", "memory.current")
        put("memory_peak", "memory", "memory.peak")
        put("swap", "memory", "memory.swap.current")
        put("oom_kills", "memory", "memory.events", "oom_kill")
        put("cpu_usec", "cpu", "cpu.stat", "usage_usec")
        put("cpu_throttled_usec", "cpu", "cpu.stat", "throttled_usec")
        put("pids", "pids", "pids.current")
        put("pids_peak", "pids", "pids.peak")
        _io_bytes(_dir_for(dirs, "io", v2), True, out)
    else:
        put("memory", "memory", "memory.usage_in_bytes")
        put("memory_peak", "memory", "memory.max_usage_in_bytes")
        put("memory_failcnt", "memory", "memory.failcnt")
        put("oom_kills", "memory", "memory.oom_control", "oom_kill")
        put("cpu_ns", "cpuacct", "cpuacct.usage")
        put("cpu_throttled_ns", "cpu", "cpu.stat", "throttled_time")
        put("pids", "pids", "pids.current")
        put("pids_peak", "pids", "pids.peak")
        _io_bytes(_dir_for(dirs, "blkio", v2), False, out)
    return out


def _io_bytes(d: str | None, v2: bool, out: dict[str, int]) -> None:
    """Bytes read and written, summed over the devices: v2's io.stat ("8:0 rbytes=N wbytes=N
    ..."), v1's blkio.throttle.io_service_bytes ("8:0 Read N")."""
    text = _read(f"{d}/{'io.stat' if v2 else 'blkio.throttle.io_service_bytes'}") if d else None
    if text is None:
        return
    read, write = ("rbytes", "wbytes") if v2 else ("Read", "Write")
    totals = {read: 0, write: 0}
    for line in text.splitlines():
        fields = line.split()
        pairs = [kv.partition("=")[::2] for kv in fields[1:]] if v2 else [fields[1:]] if len(fields) == 3 else []
        for key, value in pairs:
            if key in totals and value.isdigit():
                totals[key] += int(value)
    out["io_read_bytes"], out["io_write_bytes"] = totals[read], totals[write]


def freezer_state(dirs: dict[str, str], v2: bool) -> str | None:
    """THAWED / FREEZING / FROZEN (v1's words; v2's cgroup.events frozen maps to them)."""
    if v2:
        d = dirs.get("")
        if not d:
            return None
        try:
            events = cgroups.read_kv(f"{d}/cgroup.events")
        except cgroups.CgroupError:
            return None
        wanted = _read(f"{d}/cgroup.freeze")
        if events.get("frozen") == 1:
            return "FROZEN"
        return "FREEZING" if wanted == "1" else "THAWED"
    d = _dir_for(dirs, "freezer", v2)
    return _read(f"{d}/freezer.state") if d else None


# ---------------------------------------------------------------- processes


def process_entry(pid: int) -> dict | None:
    """pid outside and inside (the last NSpid), parent, command line; None if it has gone."""
    try:
        with Proc(pid) as p:
            st = status(p)
            cmdline = p.read("cmdline").rstrip("\0").split("\0")
    except (ProcessGone, OSError):
        return None
    nspid = st.get("NSpid", str(pid)).split()
    return {"pid": pid, "pid_inside": int(nspid[-1]), "ppid": int(st.get("PPid", "0")),
            "command": [a for a in cmdline if a] or [f"[{st.get('Name', '?')}]"]}
