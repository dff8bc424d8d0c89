"""linux.resources as typed classes: what the cgroup drivers apply, `update` changes, `check`
and `inspect` compare. Plain slotted classes (see config.py), built from an already-validated
dict (config.json's, or `update`'s document in the same shape): constructors trust types.

Each section is None when the document leaves it out or gives it empty ({} or []), so a driver
applies exactly the sections present (an empty device list is still a list: it replaces the
rules). Inside a section, a field left out is None; `update` sends only the fields it changes.
A module of its own so that `inspect` reads a saved config's resources without the config model."""

from __future__ import annotations

from ociruntime.spectables import DEFAULT_DEVICE_RULES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ociruntime.config import Device


class MemoryResources:
    __slots__ = ("check_before_update", "disable_oom_killer", "kernel", "kernel_tcp", "limit",
                 "reservation", "swap", "swappiness", "use_hierarchy")

    def __init__(self, d: dict) -> None:
        self.limit: int | None = d.get("limit")
        self.reservation: int | None = d.get("reservation")
        self.swap: int | None = d.get("swap")
        self.kernel: int | None = d.get("kernel")
        self.kernel_tcp: int | None = d.get("kernelTCP")
        self.swappiness: int | None = d.get("swappiness")
        self.disable_oom_killer: bool | None = d.get("disableOOMKiller")
        self.use_hierarchy: bool | None = d.get("useHierarchy")
        self.check_before_update: bool | None = d.get("checkBeforeUpdate")


class CpuResources:
    __slots__ = ("burst", "cpus", "idle", "mems", "period", "quota", "realtime_period",
                 "realtime_runtime", "shares")

    def __init__(self, d: dict) -> None:
        self.shares: int | None = d.get("shares")
        self.quota: int | None = d.get("quota")
        self.burst: int | None = d.get("burst")
        self.period: int | None = d.get("period")
        self.realtime_runtime: int | None = d.get("realtimeRuntime")
        self.realtime_period: int | None = d.get("realtimePeriod")
        self.cpus: str | None = d.get("cpus")
        self.mems: str | None = d.get("mems")
        self.idle: int | None = d.get("idle")


class PidsResources:
    __slots__ = ("limit",)

    def __init__(self, d: dict) -> None:
        self.limit: int | None = d.get("limit")


class WeightDevice:
    __slots__ = ("leaf_weight", "major", "minor", "weight")

    def __init__(self, d: dict) -> None:
        self.major: int = d["major"]
        self.minor: int = d["minor"]
        self.weight: int | None = d.get("weight")
        self.leaf_weight: int | None = d.get("leafWeight")


class ThrottleDevice:
    __slots__ = ("major", "minor", "rate")

    def __init__(self, d: dict) -> None:
        self.major: int = d["major"]
        self.minor: int = d["minor"]
        self.rate: int = d["rate"]


class BlockIO:
    __slots__ = ("leaf_weight", "throttle_read_bps", "throttle_read_iops", "throttle_write_bps",
                 "throttle_write_iops", "weight", "weight_device")

    def __init__(self, d: dict) -> None:
        self.weight: int | None = d.get("weight")
        self.leaf_weight: int | None = d.get("leafWeight")
        self.weight_device = [WeightDevice(w) for w in d.get("weightDevice") or ()]
        self.throttle_read_bps = [ThrottleDevice(t) for t in d.get("throttleReadBpsDevice") or ()]
        self.throttle_write_bps = [ThrottleDevice(t) for t in d.get("throttleWriteBpsDevice") or ()]
        self.throttle_read_iops = [ThrottleDevice(t) for t in d.get("throttleReadIOPSDevice") or ()]
        self.throttle_write_iops = [ThrottleDevice(t) for t in d.get("throttleWriteIOPSDevice") or ()]


class HugepageLimit:
    __slots__ = ("limit", "page_size")

    def __init__(self, d: dict) -> None:
        self.page_size: str = d["pageSize"]
        self.limit: int = d["limit"]


class InterfacePriority:
    __slots__ = ("name", "priority")

    def __init__(self, d: dict) -> None:
        self.name: str = d["name"]
        self.priority: int = d["priority"]


class NetworkResources:
    __slots__ = ("class_id", "priorities")

    def __init__(self, d: dict) -> None:
        self.class_id: int | None = d.get("classID")
        self.priorities = [InterfacePriority(p) for p in d.get("priorities") or ()]


class RdmaLimit:
    __slots__ = ("hca_handles", "hca_objects")

    def __init__(self, d: dict) -> None:
        self.hca_handles: int | None = d.get("hcaHandles")
        self.hca_objects: int | None = d.get("hcaObjects")


class DeviceRule:
    """One device-cgroup rule: allow or deny `access` (r, w, m) to devices of `type` (a, c, b)
    major:minor; None (or -1) for a major or minor is every number."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(self, d: dict) -> None:
        self.allow: bool = bool(d.get("allow"))
        self.type: str = d.get("type") or "a"
        self.major: int | None = d.get("major")
        self.minor: int | None = d.get("minor")
        self.access: str = d.get("access") or "rwm"


class Resources:
    __slots__ = ("block_io", "cpu", "devices", "hugepage_limits", "memory", "network", "pids", "rdma",
                 "unified")

    def __init__(self, d: dict) -> None:
        self.devices = [DeviceRule(r) for r in d["devices"]] if d.get("devices") is not None else None
        self.memory = MemoryResources(d["memory"]) if d.get("memory") else None
        self.cpu = CpuResources(d["cpu"]) if d.get("cpu") else None
        self.pids = PidsResources(d["pids"]) if d.get("pids") else None
        self.block_io = BlockIO(d["blockIO"]) if d.get("blockIO") else None
        self.hugepage_limits = [HugepageLimit(h) for h in d["hugepageLimits"]] if d.get("hugepageLimits") else None
        self.network = NetworkResources(d["network"]) if d.get("network") else None
        self.rdma = {dev: RdmaLimit(lim) for dev, lim in d["rdma"].items()} if d.get("rdma") else None
        self.unified: dict[str, str] | None = dict(d["unified"]) if d.get("unified") else None

    def copy(self) -> Resources:
        """A shallow copy: sections can be replaced in it without changing this one."""
        new = Resources.__new__(Resources)
        for name in Resources.__slots__:
            setattr(new, name, getattr(self, name))
        return new


def with_default_devices(rules: list[DeviceRule] | None, devices: list[Device] | None = None) -> list[DeviceRule]:
    """The device-cgroup rule list for a container: the config's `linux.resources.devices`, then
    the default devices, then an allow rule for every `linux.devices` entry (the spec makes them
    usable in the container). The library does not add the defaults behind the caller's back."""
    out = list(rules or ())
    out.extend(DeviceRule(r) for r in DEFAULT_DEVICE_RULES)
    for dev in devices or ():
        if dev.type in ("c", "b", "u"):
            out.append(DeviceRule({"allow": True, "type": "c" if dev.type == "u" else dev.type,
                                   "major": dev.major, "minor": dev.minor, "access": "rwm"}))
    return out
