"""Where the cgroup hierarchies are mounted (/proc/self/mountinfo) and where a process's own
cgroups are (/proc/self/cgroup): the facts every driver builds its directories from."""

from __future__ import annotations

from ociruntime.linux.cgroups.fs import read_file

MOUNTINFO = "/proc/self/mountinfo"
SELF_CGROUP = "/proc/self/cgroup"

# Mount options of a v1 cgroup mount that are not controller names.
_V1_OPTIONS = frozenset(
    ("rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods",
     "nosuid", "nodev", "noexec", "relatime")
)


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


def unescape(field: str) -> str:
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
        root, point = unescape(fields[3]), unescape(fields[4])
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
