"""The systemd cgroup driver (`--systemd-cgroup`): systemd owns the container's cgroup.

cgroupsPath is "slice:prefix:name" and names the unit as runc does: a transient scope
"prefix-name.scope" in the slice (default system.slice, user.slice for rootless), or the slice
"name" itself when name ends in ".slice". `create` asks systemd for the unit over D-Bus
(org.freedesktop.systemd1.Manager.StartTransientUnit) with Delegate=yes and the init's pid, and
waits for the job; resources systemd knows are set as unit properties (SetUnitProperties, kept
across `systemctl daemon-reload`), and all of them are also written through cgroupfs by the v1/v2
driver working on the unit's cgroup (on v2 the unit's ControlGroup property, as systemd made
it), which covers what systemd has no property for. `delete` stops the unit and resets it if it
failed.

Rootless (an ordinary user, or root of podman's user namespace) asks the user's own systemd
(`systemd --user` of a lingering or logged-in user) on the user's bus: the scope lands under
user@UID.service/user.slice/, and the controllers user@UID.service was delegated (Debian 12:
cpu, memory, pids) can be used in it. Without that bus, or on cgroup v1, there is no cgroup
(see SystemdManager._connect_or_skip).

The D-Bus client (linux/cgroups/dbus.py) is imported only here, only when systemd has to be
asked: `state`, `kill`, `ps` and `events` read the unit's cgroup through the filesystem driver.
"""

from __future__ import annotations

from ociruntime import lean
from ociruntime.linux.cgroups import CgroupError, CgroupManager, Layout, build
from ociruntime.linux.cgroups import from_state as _fs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime.resources import DeviceRule, Resources


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
    # runc's name even with an empty prefix ("-name.scope"): the same cgroupsPath must give the
    # same unit under either runtime.
    unit = f"{prefix}-{name}.scope"
    parent = expand_slice(slice_name or ("user.slice" if rootless else "system.slice"))
    return unit, f"{parent}/{unit}"


# ---------------------------------------------------------------- systemd over D-Bus

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
INFINITY = (1 << 64) - 1  # systemd's "no limit" for every uint64 property
JOB_TIMEOUT = 60.0  # seconds for a start/stop job (runc waits 30 s; TCG guests are slow)


class Systemd:
    """systemd's Manager object on one bus connection ("system", or "user" for rootless)."""

    __slots__ = ("bus", "jobs")

    def __init__(self, bus: str) -> None:
        from ociruntime.linux.cgroups.dbus import DAEMON, Bus, DBusError

        self.bus = Bus(bus)
        try:
            # JobRemoved is what a job's end is learnt from. systemd sends a job's signals out
            # when its requester is still connected, without Subscribe (which makes it send
            # every change of every unit while we are connected, as runc does not ask either).
            self.jobs = self.bus.watch(interface=MANAGER, member="JobRemoved", path=MANAGER_PATH)
            # Whether systemd is there, asked of the bus daemon: systemd may be busy (it was
            # for 270-330 ms in the guest, after a container's processes were killed).
            self.bus.call(*DAEMON, "GetNameOwner", "s", (SYSTEMD,))
        except DBusError as e:
            self.bus.close()
            raise self.bus.unreachable(e) from None

    def call(self, member: str, signature: str | None = None, body: tuple = ()) -> tuple:
        return self.bus.call(SYSTEMD, MANAGER_PATH, MANAGER, member, signature, body)

    def run_job(self, what: str, member: str, signature: str, body: tuple) -> None:
        """Call a method that queues a job (StartTransientUnit, StopUnit) and wait for it."""
        (job,) = self.call(member, signature, body)
        while True:
            try:
                msg = self.bus.next_message(self.jobs, JOB_TIMEOUT)
            except TimeoutError:
                raise CgroupError(f"cgroup: systemd: {what}: job {job} did not finish within "
                                  f"{JOB_TIMEOUT:g}s") from None
            _, path, unit, result = msg.body
            if path == job:
                if result != "done":
                    raise CgroupError(f"cgroup: systemd: {what}: job {result} (see "
                                      f"`systemctl status {unit}` and `journalctl -u {unit}`)")
                return

    def unit_cgroup(self, unit: str) -> str:
        """The unit's ControlGroup property: its cgroup, from the cgroup root. A user's systemd
        puts it under user@UID.service/, which only systemd knows; "" before it has one."""
        (path,) = self.call("GetUnit", "s", (unit,))
        kind = "Slice" if unit.endswith(".slice") else "Scope"
        ((_, value),) = self.bus.call(SYSTEMD, path, "org.freedesktop.DBus.Properties", "Get", "ss",
                                      (f"org.freedesktop.systemd1.{kind}", "ControlGroup"))
        return str(value)

    def close(self) -> None:
        self.bus.close()


def _ignore(err: CgroupError, *names: str) -> None:
    if getattr(err, "name", "") not in names:
        raise err


NO_SUCH_UNIT = ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed")
UNIT_EXISTS = "org.freedesktop.systemd1.UnitExists"


# ---------------------------------------------------------------- resources -> properties


def cpu_mask(text: str, field: str) -> bytes:
    """A cpuset list ("0-2,7") as systemd's AllowedCPUs/AllowedMemoryNodes bytes: bit n of the
    mask (byte n // 8, bit n % 8) is CPU or node n."""
    bits = 0
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or int(hi or lo) < int(lo):
            raise CgroupError(f"cgroup: linux.resources.cpu.{field}: invalid list {text!r}")
        for n in range(int(lo), int(hi or lo) + 1):
            bits |= 1 << n
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def _limit(value: int) -> int:
    return INFINITY if value < 0 else value


def quota_properties(quota: int, period: int) -> list:
    """cpu.max as systemd says it: CPU time per second of wall time, and the period. systemd
    writes quota = PerSec * period / 1 s back, so PerSec is rounded up to give at least
    `quota` (exact for every period that divides a second)."""
    props = []
    if period:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota < 0:
        props.append(("CPUQuotaPerSecUSec", ("t", INFINITY)))
    elif quota:
        per_sec = -(-quota * 1_000_000 // (period or 100_000))
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    return props


def resource_properties(resources: Resources, v2: bool, current_quota=None) -> list:
    """The unit properties for linux.resources that systemd has a property for. Everything is
    also written through cgroupfs; these make systemd keep the same values when it rewrites the
    cgroup (daemon-reload, another unit's change in the slice). `current_quota()` reads the
    current cpu.max quota, for an update that changes only the period."""
    from ociruntime.linux.cgroups.v2 import blkio_to_io_weight, shares_to_weight, swap_to_v2
    from ociruntime.resources import CpuResources, MemoryResources

    props: list = []
    mem = resources.memory or MemoryResources({})
    cpu = resources.cpu or CpuResources({})
    limit = mem.limit or 0
    if limit:
        props.append(("MemoryMax" if v2 else "MemoryLimit", ("t", _limit(limit))))
    if v2 and mem.reservation:
        props.append(("MemoryLow", ("t", _limit(mem.reservation))))
    if v2 and mem.swap:
        swap = swap_to_v2(limit, mem.swap)
        props.append(("MemorySwapMax", ("t", INFINITY if swap == "max" else int(swap or 0))))
    if cpu.shares:
        props.append(("CPUWeight", ("t", shares_to_weight(cpu.shares))) if v2
                     else ("CPUShares", ("t", cpu.shares)))
    quota, period = cpu.quota or 0, cpu.period or 0
    if period and not quota and current_quota is not None:
        quota = current_quota()
    props += quota_properties(quota, period)
    if v2 and cpu.cpus:
        props.append(("AllowedCPUs", ("ay", cpu_mask(cpu.cpus, "cpus"))))
    if v2 and cpu.mems:
        props.append(("AllowedMemoryNodes", ("ay", cpu_mask(cpu.mems, "mems"))))
    pids_limit = resources.pids and resources.pids.limit
    # TasksMax=0 is out of systemd's range: a limit of 0 is written through cgroupfs only.
    if pids_limit:
        props.append(("TasksMax", ("t", _limit(pids_limit))))
    weight = resources.block_io and resources.block_io.weight
    if weight:
        props.append(("IOWeight", ("t", blkio_to_io_weight(weight))) if v2
                     else ("BlockIOWeight", ("t", weight)))
    if resources.devices is not None:
        props += device_properties(resources.devices)
    if v2 and resources.unified:
        props += unified_properties(resources.unified)
    return props


# linux.resources.unified keys systemd has a property for (the rest is cgroupfs only).
_UNIFIED_MEMORY = {"memory.min": "MemoryMin", "memory.low": "MemoryLow",
                   "memory.high": "MemoryHigh", "memory.max": "MemoryMax",
                   "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax"}


def unified_properties(unified: dict) -> list:
    props: list = []
    for key, value in unified.items():
        text = str(value).strip()
        if key in _UNIFIED_MEMORY and (text == "max" or text.isdigit()):
            if key == "pids.max" and text == "0":
                continue
            props.append((_UNIFIED_MEMORY[key], ("t", INFINITY if text == "max" else int(text))))
        elif key == "cpu.weight" and text.isdigit():
            props.append(("CPUWeight", ("t", int(text))))
        elif key == "cpu.max":
            quota, _, period = text.partition(" ")
            if (quota == "max" or quota.isdigit()) and (not period or period.isdigit()):
                props += quota_properties(-1 if quota == "max" else int(quota), int(period or 0))
        elif key in ("cpuset.cpus", "cpuset.mems"):
            name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
            props.append((name, ("ay", cpu_mask(text, key))))
    return props


def device_properties(rules: list[DeviceRule]) -> list:
    """linux.resources.devices as DevicePolicy/DeviceAllow, when systemd can say the same: a
    deny-all rule followed by allow rules only (the usual shape). Otherwise systemd is told to
    filter nothing (policy auto, empty list) and the device program the cgroupfs driver attaches
    enforces the rules alone. Never a stricter systemd list than the rules: that would break
    devices the container is allowed."""
    start = None
    for i, rule in enumerate(rules):
        if (not rule.allow and rule.type == "a" and rule.major in (None, -1)
                and rule.minor in (None, -1) and set(rule.access) == set("rwm")):
            start = i
    allows = None if start is None else [_device_allow(r) for r in rules[start + 1:]]
    if allows is None or None in allows:
        return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    flat = [entry for pair in allows for entry in pair]  # type: ignore[union-attr]
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", flat))]


def _device_allow(rule: DeviceRule) -> list[tuple[str, str]] | None:
    """systemd's DeviceAllow entries for one allow rule; None when it has no way to say it."""
    if not rule.allow:
        return None
    access = "".join(ch for ch in "rwm" if ch in rule.access)
    kind = rule.type
    major, minor = rule.major, rule.minor
    major = None if major == -1 else major
    minor = None if minor == -1 else minor
    if kind == "a":
        return [("char-*", access), ("block-*", access)] if major is None and minor is None else None
    group = "char" if kind == "c" else "block"
    if major is None:
        return [(f"{group}-*", access)] if minor is None else None
    if minor is not None:
        return [(f"/dev/{group}/{major}:{minor}", access)]
    name = _major_name(group, major)
    return [(f"{group}-{name}", access)] if name else None


def _major_name(group: str, major: int) -> str | None:
    """The driver name of a major number in /proc/devices ("136 pts"), which is how systemd
    names "every minor of this major"; None when absent or shared by several majors."""
    from ociruntime.linux.cgroups import read_file

    section, names = "", {}
    for line in read_file("/proc/devices").splitlines():
        if line.endswith(":"):
            section = "char" if line.startswith("Character") else "block"
            continue
        num, _, name = line.strip().partition(" ")
        if section == group and num.isdigit():
            names.setdefault(name, []).append(int(num))
    found = [n for n, majors in names.items() if majors == [major]]
    return found[0] if len(found) == 1 and "*" not in found[0] else None


# ---------------------------------------------------------------- the driver


class SystemdManager(CgroupManager):
    """The unit systemd makes for the container, and the v1/v2 driver for its cgroup."""

    driver = "systemd"

    def __init__(self, inner: CgroupManager, unit: str, *, bus: str = "system",
                 started: bool = False, skipped: str = "") -> None:
        super().__init__()
        self.inner = inner
        self.unit = unit
        self.bus = bus
        self.started = started  # this container started the unit: only then is it stopped
        # Rootless without a user systemd that can delegate a cgroup: why no cgroup is used.
        self.skipped = skipped
        self.warnings = inner.warnings
        self._systemd: Systemd | None = None
        self._started_with: Resources | None = None  # the resources the unit's start set

    @property
    def v2(self) -> bool:
        return self.inner.driver == "v2"

    def systemd(self) -> Systemd:
        if self._systemd is None:
            self._systemd = Systemd(self.bus)
        return self._systemd

    def slice(self) -> str:
        """The unit's parent slice, from its cgroup path (/a.slice/a-b.slice/x.scope)."""
        parent = next(iter(self.inner.paths().values())).rsplit("/", 2)[-2]
        return parent if parent.endswith(".slice") else "-.slice"

    # ------------------------------------------------------------ lifecycle

    def plan(self) -> None:
        # Connecting first: without systemd, create fails here, before any process exists.
        if self.inner.rootless:
            self._connect_or_skip()
            if self.skipped:
                return
        else:
            self.systemd()
        if not self.v2:
            # v1: the hierarchies systemd does not manage (cpuset, freezer, ...) are made by
            # the filesystem driver, which records them to remove them. On v2 systemd makes
            # and removes every directory (the scope's and the slices above it).
            self.inner.plan()

    def _connect_or_skip(self) -> None:
        """Rootless: the user's systemd (systemd --user, on the user's bus) makes the scope and
        delegates it. Without one (no lingering session, cgroup v1 where systemd delegates
        nothing to users) the container runs without a cgroup, as the cgroupfs driver does where
        nothing is delegated: said on a debug line; resources asked for are then an error
        (set)."""
        if not self.v2:
            why = "systemd delegates no cgroup to an ordinary user on cgroup v1"
        else:
            try:
                self.systemd()
                return
            except CgroupError as e:
                from ociruntime.linux.cgroups.dbus import BusUnusable

                why = e.reason if isinstance(e, BusUnusable) else str(e)  # without the option's name
        from ociruntime import log

        self.skipped = f"rootless, systemd cgroup driver: no cgroup: {why}"
        self.inner.skip_all()
        log.debug(self.skipped)

    def create(self) -> None:
        self.inner.create()

    def procs_files(self) -> list[str]:
        return self.inner.procs_files()

    def apply(self, pid: int, resources: Resources | None = None) -> None:
        """Start the unit with `pid` in it (the runtime's child, which forks the container's init
        there) and the properties of `resources`, wait until systemd has made its cgroup, then
        let the filesystem driver join the hierarchies systemd does not manage (v1) and enable
        the controllers systemd does not know (hugetlb, rdma, misc on v2) for it. set() of the
        same resources then writes them through cgroupfs only: a SetUnitProperties right after
        the start waited 60-110 ms in the guest for systemd to finish starting the unit."""
        if self.skipped:
            return
        name = self.unit.rsplit(".", 1)[0]
        props: list = [("Description", ("s", f"ociruntime container {name}"))]
        is_slice = self.unit.endswith(".slice")
        if is_slice:
            props.append(("Wants", ("as", [self.slice()])))
        else:
            props += [("Slice", ("s", self.slice())), ("Delegate", ("b", True)),
                      ("PIDs", ("au", [pid]))]
        props += [(p, ("b", True)) for p in ("MemoryAccounting", "CPUAccounting",
                                              "IOAccounting", "TasksAccounting")]
        props.append(("DefaultDependencies", ("b", False)))
        given = self._properties(resources) if resources is not None else []
        self._start(props + given, existing_ok=is_slice)
        if self.started and given:  # not an existing slice shared with others: it took them
            self._started_with = resources
        if self.v2:
            from ociruntime.linux.cgroups.controllers import enable_controllers

            placed = "" if is_slice else self._cgroup_of(pid)
            path = self._use_unit_cgroup(placed)
            enable_controllers(self.inner.mount, path, None)  # type: ignore[attr-defined]
            if placed:
                # systemd moved pid there (PIDs=): moving it again would take the kernel's
                # cgroup_threadgroup_rwsem, an RCU grace period, for nothing.
                return
        self.inner.apply(pid)

    def join(self, pid: int) -> None:
        # The unit runs already (the container's init is in it): a process joins its cgroup
        # through cgroupfs, as runc's exec does; a second StartTransientUnit would be refused.
        if not self.skipped:
            self.inner.apply(pid)

    def _start(self, props: list, existing_ok: bool) -> None:
        from ociruntime.linux.cgroups.dbus import DBusError

        sd = self.systemd()
        what = f"start unit {self.unit}"
        for attempt in (1, 2):
            try:
                sd.run_job(what, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                           (self.unit, "replace", props, []))
                self.started = True
                return
            except DBusError as e:
                if e.name != UNIT_EXISTS:
                    raise CgroupError(f"cgroup: systemd: {what}: {e}") from None
                if existing_ok:
                    return  # a slice shared with other containers (kubelet's pod slices)
                if attempt == 2:
                    raise CgroupError(f"cgroup: systemd: {what}: the unit already exists "
                                      "(another container's?)") from None
                # A failed unit of an earlier container with this name stays loaded until
                # reset; an active one is not ours and stays (ResetFailedUnit ignores it).
                try:
                    sd.call("ResetFailedUnit", "s", (self.unit,))
                except CgroupError as reset:
                    _ignore(reset, *NO_SUCH_UNIT)

    def _use_unit_cgroup(self, cgroup: str) -> str:
        """cgroup v2: the directory systemd made for the unit (the path from cgroupsPath is right
        on the system bus, but a user's systemd nests it under user@UID.service/); the
        filesystem driver works there from now on. A scope's is `cgroup`, where systemd put our
        child (PIDs=), as the kernel says (_cgroup_of): asking systemd (GetUnit, then the unit's
        ControlGroup property) took two round trips, which in the guest waited 70-125 ms for
        systemd to finish the start. A slice holds no process of ours: systemd is asked."""
        if not cgroup:
            cgroup = self.systemd().unit_cgroup(self.unit)
        if cgroup.startswith("/"):
            self.inner.path = self.inner.mount.rstrip("/") + cgroup  # type: ignore[attr-defined]
        return self.inner.path  # type: ignore[attr-defined]

    def _cgroup_of(self, pid: int) -> str:
        """The cgroup v2 path of `pid` (/proc/PID/cgroup), if it is this unit's; else ""."""
        from ociruntime.linux.cgroups.layout import parse_self_cgroup

        path = parse_self_cgroup(lean.read_text(f"/proc/{pid}/cgroup")).get("", "")
        return path if path.endswith(f"/{self.unit}") else ""

    def set(self, resources: Resources | None) -> None:
        if resources is None:
            return
        if self.skipped:
            try:
                self.inner.set(resources)
            except CgroupError as e:
                raise CgroupError(f"{e} ({self.skipped})") from None
            return
        from ociruntime.linux.cgroups.dbus import DBusError

        props = self._properties(resources, self._current_quota)
        started_with, self._started_with = self._started_with, None
        if props and resources is not started_with:
            try:
                self.systemd().call("SetUnitProperties", "sba(sv)", (self.unit, True, props))
            except DBusError as e:
                raise CgroupError(f"cgroup: systemd: set properties of {self.unit}: {e}") from None
        self.inner.set(resources)

    def _properties(self, resources: Resources, current_quota=None) -> list:
        props = resource_properties(resources, self.v2, current_quota)
        if self.bus == "user":
            # A user's systemd cannot attach a device filter (BPF needs privileges no
            # delegation gives): rootless device rules are best effort (CgroupManager.set_devices).
            props = [p for p in props if p[0] not in ("DevicePolicy", "DeviceAllow")]
        return props

    def _current_quota(self) -> int:
        from ociruntime.linux.cgroups import read_file

        path = next(iter(self.inner.paths().values()))
        quota = read_file(path + "/cpu.max").split()[0] if self.v2 else read_file(
            path + "/cpu.cfs_quota_us").strip()
        return -1 if quota in ("max", "-1") else int(quota)

    def destroy(self) -> None:
        """Stop the unit (systemd removes its cgroup) and forget it if it failed; then the
        filesystem driver removes what it made itself (v1 hierarchies systemd does not manage).
        Never a unit this container did not start."""
        if self.started:
            sd = self.systemd()
            try:
                sd.run_job(f"stop unit {self.unit}", "StopUnit", "ss", (self.unit, "replace"))
            except CgroupError as e:
                _ignore(e, *NO_SUCH_UNIT)
            try:
                sd.call("ResetFailedUnit", "s", (self.unit,))
            except CgroupError as e:
                _ignore(e, *NO_SUCH_UNIT)
        self.inner.destroy()

    def owned(self) -> bool:
        # Only a unit this container started is all its own: an active unit of the same name
        # (refused at apply) holds someone else's processes, which a failed create must not kill.
        return self.started

    def pids(self) -> list[int]:
        return self.inner.pids()

    def kill_all(self) -> bool:
        return self.inner.kill_all()

    def freeze(self) -> None:
        self.inner.freeze()

    def thaw(self) -> None:
        self.inner.thaw()

    def frozen(self) -> bool:
        return self.inner.frozen()

    def stats(self) -> dict:
        return self.inner.stats()

    def paths(self) -> dict[str, str]:
        return self.inner.paths()

    def to_state(self) -> dict:
        return {"driver": self.driver, "unit": self.unit, "bus": self.bus,
                "started": self.started, "skipped": self.skipped, "inner": self.inner.to_state()}


def manager(cgroups_path: str | None, container_id: str, layout: Layout, *,
            rootless: bool = False) -> SystemdManager:
    unit, path = parse_path(cgroups_path, container_id, rootless)
    return SystemdManager(build(layout, path, {}, rootless=rootless), unit,
                          bus="user" if rootless else "system")


def from_state(data: dict) -> SystemdManager:
    return SystemdManager(_fs(data["inner"]), data["unit"], bus=data.get("bus") or "system",
                          started=bool(data.get("started")), skipped=str(data.get("skipped") or ""))
