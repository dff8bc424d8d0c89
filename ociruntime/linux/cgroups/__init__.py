"""Control groups: the manager interface, its one resource dispatch, and the factory.

The package: fs.py (cgroupfs file access: every failure a CgroupError naming the file),
layout.py (where the hierarchies are mounted, where our own cgroups are), this module (the
CgroupManager interface, the per-controller dispatch of linux.resources every cgroupfs driver
shares, `manager()` and `from_state()`), and the drivers: v1.py (v1 and hybrid), v2.py,
systemd.py (over D-Bus, wrapping one of the other two), with ebpf.py (v2 device rules).

`manager()` picks a driver for the host (cgroup v1 or hybrid -> v1.py, pure v2 -> v2.py,
`systemd=True` -> systemd.py) and `from_state()` rebuilds one from what `to_state()` saved.
This module is imported on `delete`'s path, so it imports only the error types, fs and
ociruntime.lean (no `os`: see there); layout and the drivers are imported where used. The names of fs and
layout are also found here, where the drivers and callers have always found them.
"""

from ociruntime import lean
from ociruntime.errors import CgroupError
from ociruntime.linux.cgroups import fs
from ociruntime.linux.cgroups.fs import clean_path, read_file, write_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime import resources as res
    from ociruntime.linux.cgroups.layout import Layout

__all__ = ["CgroupError", "CgroupManager", "clean_path", "from_state", "manager", "read_file", "write_file"]
# The names of fs.py and layout.py are found here too (PEP 562), where drivers and callers have
# always imported them from; layout.py loads on first use only: state/kill/delete rebuild their
# manager from the saved state (from_state) and never read the layout.
_LAYOUT_NAMES = frozenset(("MOUNTINFO", "SELF_CGROUP", "Layout", "hierarchy_dir", "parse_mountinfo",
                           "parse_self_cgroup", "read_layout", "rootless_view", "unescape"))


def __getattr__(name: str) -> object:
    if name in _LAYOUT_NAMES:
        from ociruntime.linux.cgroups import layout

        return getattr(layout, name)
    if not name.startswith("_") and hasattr(fs, name):
        return getattr(fs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
        if not (self.rootless and err.errno in (1, 13, 30)):
            return False
        from ociruntime import log

        log.debug(f"rootless: cgroup {path} not used (not delegated to this user): {err}")
        return True

    def skip_all(self) -> None:
        """Rootless, nothing delegated (the systemd driver without a user systemd): use no
        cgroup; the container stays in the caller's, and a resource asked for is an error."""
        raise NotImplementedError

    def set_devices(self, rules: "list[res.DeviceRule]") -> None:
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

    def _devices(self, rules: "list[res.DeviceRule]") -> None:
        raise NotImplementedError

    def create(self) -> None:
        """Create the cgroup directories without moving any process (idempotent)."""
        raise NotImplementedError

    def procs_files(self) -> list[str]:
        """cgroup.procs of every cgroup to join; writing "0" to one moves the writer itself."""
        raise NotImplementedError

    def apply(self, pid: int, resources: "res.Resources | None" = None) -> None:
        """create(), then move `pid` (cgroup.procs) into all of the cgroups that self_join()
        did not hand to it. `resources`: what set() is given next; the systemd driver starts
        its unit with them, the filesystem drivers write them in set()."""
        raise NotImplementedError

    def self_join(self) -> list[tuple[int, str]]:
        """The cgroups created, files a child the runtime forks writes "0" to, to move itself
        there on its own: (fd opened for writing, its path). [] for the drivers that move
        processes otherwise (v2: the child is born in its cgroup, see clone_target; systemd)."""
        return []

    # join(pid): move `pid` into the cgroups of a container that exists (`exec`); for the
    # filesystem drivers what apply() does, the systemd driver must not start its unit again.
    def join(self, pid: int) -> None:
        self.apply(pid)

    # Resources attribute -> the method applying it, in writing order: device rules first;
    # `unified` last, so explicit v2 keys override the converted v1-style settings.
    RESOURCES = (("devices", "set_devices"), ("memory", "_memory"), ("cpu", "_cpu"), ("pids", "_pids"),
                 ("block_io", "_blkio"), ("hugepage_limits", "_hugetlb"), ("network", "_network"),
                 ("rdma", "_rdma"), ("unified", "_unified"))

    def set(self, resources: "res.Resources | None") -> None:
        """Apply linux.resources: each section present (not None) to its controller's
        method, in RESOURCES order -- the one dispatch of the cgroupfs drivers."""
        if resources is None:
            return
        for attr, method in self.RESOURCES:
            value = getattr(resources, attr)
            if value is not None:
                getattr(self, method)(value)

    def _dir(self, controller: str) -> str:
        """The directory of `controller`'s cgroup (a CgroupError when the host lacks it)."""
        raise NotImplementedError

    def _pids(self, pids: "res.PidsResources") -> None:
        limit = pids.limit
        if limit is not None:
            # runtime-spec 1.3.0: 0 is a real limit (no new task); only a negative one is none.
            write_file(self._dir("pids") + "/pids.max", str(limit) if limit >= 0 else "max")

    def _rdma(self, rdma: "dict[str, res.RdmaLimit]") -> None:
        from ociruntime.linux.cgroups.controllers import rdma_lines

        path = self._dir("rdma") + "/rdma.max"
        for line in rdma_lines(rdma):
            write_file(path, line)

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
        """The record saved in the state file, from_state's input. A driver whose cgroups are
        plain directories it made (cgroupfs, owned()) adds "removable": [[directory, levels it
        made], ...], so that delete can remove them without loading the driver."""
        raise NotImplementedError

    def paths(self) -> dict[str, str]:
        """{hierarchy key: directory}: "" is the unified hierarchy (runc's state.json shape)."""
        raise NotImplementedError

    def exists(self) -> bool:
        """True while the container's cgroup directory is still there."""
        return any(lean.is_dir(p) for p in self.paths().values())

    # clone_target(): an fd of the cgroup v2 directory a child can be cloned straight into
    # (CLONE_INTO_CGROUP), the cgroup created; -1 when there is none (cgroup v1, systemd's scope
    # made from a pid): self_join() or apply() moves it.
    def clone_target(self) -> int:
        return -1


def manager(
    cgroups_path: str | None,
    container_id: str,
    *,
    systemd: bool = False,
    rootless: bool = False,
    layout: "Layout | None" = None,
    mountinfo: str | None = None,
    own_cgroup: str | None = None,
) -> CgroupManager:
    """The manager for a container's cgroup.

    cgroups_path: absolute -> from each hierarchy's root; relative -> below the runtime's own
    cgroup; None -> the container id, relative (what runc does). With systemd=True it is
    "slice:prefix:name" (default "system.slice:ociruntime:<id>").
    layout/mountinfo/own_cgroup let a caller share what it already read (/proc/self/mountinfo,
    /proc/self/cgroup) so they are read at most once."""
    from ociruntime.linux.cgroups.layout import MOUNTINFO, SELF_CGROUP, parse_mountinfo, parse_self_cgroup

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
            own[""] = lean.parent(own[""])
    return build(layout, path, own, rootless=rootless)


def build(layout: "Layout", path: str, own: dict[str, str], *, rootless: bool) -> CgroupManager:
    """A v1 or v2 manager for `path` (already cleaned) in `layout`."""
    from ociruntime.linux.cgroups.layout import hierarchy_dir

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
