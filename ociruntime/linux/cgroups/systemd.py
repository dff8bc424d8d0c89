"""The `--systemd-cgroup` path form, "slice:prefix:name".

What is implemented: parsing and expanding the path the way systemd lays units out
("a-b.slice" -> /a.slice/a-b.slice, unit "prefix-name.scope") and driving that cgroup with the
filesystem drivers (v1/hybrid or v2), so a container gets the cgroup systemd would give it.

What is not: registering the scope with systemd over D-Bus (StartTransientUnit with Delegate=yes
and the resource properties). Without it systemd does not know the scope, may not keep the
controllers enabled for it, and `systemctl status` will not show it. This host has no systemd as
PID 1, so that part could not be exercised here; it belongs in the VM tests.
"""

from __future__ import annotations

from ociruntime.linux.cgroups import CgroupError, CgroupManager, Layout, build
from ociruntime.linux.cgroups import from_state as _fs


def expand_slice(slice_name: str) -> str:
    """'a-b-c.slice' -> '/a.slice/a-b.slice/a-b-c.slice'; '-.slice' (the root slice) -> ''."""
    if slice_name == "-.slice":
        return ""
    if not slice_name.endswith(".slice") or "/" in slice_name:
        raise CgroupError(f"cgroup: invalid systemd slice {slice_name!r}")
    stem = slice_name[:-len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem:
        raise CgroupError(f"cgroup: invalid systemd slice {slice_name!r}")
    path, prefix = "", ""
    for part in stem.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        path += f"/{prefix}.slice"
    return path


def parse_path(cgroups_path: str | None, container_id: str, rootless: bool) -> tuple[str, str]:
    """(unit name, cgroup path) for a "slice:prefix:name" cgroupsPath."""
    if not cgroups_path:
        cgroups_path = f"{'user' if rootless else 'system'}.slice:ociruntime:{container_id}"
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise CgroupError(f"cgroup: expected cgroupsPath of the form slice:prefix:name for "
                          f"systemd cgroups, got {cgroups_path!r}")
    slice_name, prefix, name = parts
    if "/" in name or "/" in prefix or not name:
        raise CgroupError(f"cgroup: invalid systemd cgroupsPath {cgroups_path!r}")
    if name.endswith(".slice"):
        return name, expand_slice(name) or "/"
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    parent = expand_slice(slice_name or ("user.slice" if rootless else "system.slice"))
    return unit, f"{parent}/{unit}"


class SystemdManager(CgroupManager):
    """A filesystem driver at the systemd-shaped path; remembers the unit name."""

    driver = "systemd"

    def __init__(self, inner: CgroupManager, unit: str) -> None:
        super().__init__()
        self.inner = inner
        self.unit = unit
        self.warnings = inner.warnings

    def create(self) -> None:
        self.inner.create()

    def procs_files(self) -> list[str]:
        return self.inner.procs_files()

    def apply(self, pid: int) -> None:
        self.inner.apply(pid)

    def set(self, resources: dict | None) -> None:
        self.inner.set(resources)

    def destroy(self) -> None:
        self.inner.destroy()

    def plan(self) -> None:
        self.inner.plan()

    def owned(self) -> bool:
        return self.inner.owned()

    def pids(self) -> list[int]:
        return self.inner.pids()

    def freeze(self) -> None:
        self.inner.freeze()

    def thaw(self) -> None:
        self.inner.thaw()

    def frozen(self) -> bool:
        return self.inner.frozen()  # type: ignore[attr-defined, no-any-return]

    def stats(self) -> dict:
        return self.inner.stats()

    def paths(self) -> dict[str, str]:
        return self.inner.paths()

    def to_state(self) -> dict:
        return {"driver": self.driver, "unit": self.unit, "inner": self.inner.to_state()}


def manager(cgroups_path: str | None, container_id: str, layout: Layout, *,
            rootless: bool = False) -> SystemdManager:
    unit, path = parse_path(cgroups_path, container_id, rootless)
    return SystemdManager(build(layout, path, {}, rootless=rootless), unit)


def from_state(data: dict) -> SystemdManager:
    return SystemdManager(_fs(data["inner"]), data["unit"])
