"""The config model: the parts of config.json the runtime acts on, as typed classes.

These are plain slotted classes rather than @dataclass: importing dataclasses pulls in inspect
and costs ~16 ms, paid by every `create`. Each class is built from an already-validated dict
(schema + semantic checks in bundle.py), so constructors trust types and fill in defaults."""

from __future__ import annotations

from ociruntime.spectables import DEFAULT_DEVICE_RULES, HOOK_KINDS

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class User:
    __slots__ = ("additional_gids", "gid", "uid", "umask")

    def __init__(self, d: dict) -> None:
        self.uid: int = d.get("uid", 0)
        self.gid: int = d.get("gid", 0)
        self.umask: int | None = d.get("umask")
        self.additional_gids: list[int] = list(d.get("additionalGids") or [])


class Capabilities:
    __slots__ = ("ambient", "bounding", "effective", "inheritable", "permitted")

    def __init__(self, d: dict | None) -> None:
        d = d or {}
        self.bounding: list[str] = list(d.get("bounding") or [])
        self.effective: list[str] = list(d.get("effective") or [])
        self.permitted: list[str] = list(d.get("permitted") or [])
        self.inheritable: list[str] = list(d.get("inheritable") or [])
        self.ambient: list[str] = list(d.get("ambient") or [])


class Rlimit:
    __slots__ = ("hard", "soft", "type")

    def __init__(self, d: dict) -> None:
        self.type: str = d["type"]
        self.soft: int = d["soft"]
        self.hard: int = d["hard"]


class Process:
    __slots__ = (
        "apparmor_profile",
        "args",
        "capabilities",
        "console_size",
        "cwd",
        "env",
        "exec_cpu_affinity",
        "io_priority",
        "no_new_privileges",
        "oom_score_adj",
        "rlimits",
        "scheduler",
        "selinux_label",
        "terminal",
        "user",
    )

    def __init__(self, d: dict) -> None:
        self.terminal: bool = bool(d.get("terminal", False))
        self.console_size: dict | None = d.get("consoleSize")
        self.user = User(d.get("user") or {})
        self.args: list[str] = list(d.get("args") or [])
        self.env: list[str] = list(d.get("env") or [])
        self.cwd: str = d.get("cwd") or "/"
        self.capabilities = Capabilities(d.get("capabilities"))
        self.rlimits = [Rlimit(r) for r in d.get("rlimits") or []]
        self.no_new_privileges: bool = bool(d.get("noNewPrivileges", False))
        self.oom_score_adj: int | None = d.get("oomScoreAdj")
        self.apparmor_profile: str = d.get("apparmorProfile") or ""
        self.selinux_label: str = d.get("selinuxLabel") or ""
        self.scheduler: dict | None = d.get("scheduler")
        self.io_priority: dict | None = d.get("ioPriority")
        self.exec_cpu_affinity: dict = d.get("execCPUAffinity") or {}

    def path_env(self) -> str:
        for entry in self.env:
            if entry.startswith("PATH="):
                return entry[5:]
        return DEFAULT_PATH[5:]


class Mount:
    __slots__ = ("destination", "gid_mappings", "options", "source", "type", "uid_mappings")

    def __init__(self, d: dict) -> None:
        self.destination: str = d["destination"]
        self.source: str = d.get("source") or ""
        self.type: str = d.get("type") or ""
        self.options: list[str] = list(d.get("options") or [])
        self.uid_mappings = [IdMapping(m) for m in d.get("uidMappings") or []]
        self.gid_mappings = [IdMapping(m) for m in d.get("gidMappings") or []]

    def idmap(self) -> str:
        """"ridmap", "idmap" or "" (the last of the two options wins)."""
        return next((o for o in reversed(self.options) if o in ("idmap", "ridmap")), "")

    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options


class Hook:
    __slots__ = ("args", "env", "path", "timeout")

    def __init__(self, d: dict) -> None:
        self.path: str = d["path"]
        self.args: list[str] = list(d.get("args") or [self.path])
        self.env: list[str] = list(d.get("env") or [])
        self.timeout: int | None = d.get("timeout")




class Namespace:
    __slots__ = ("path", "type")

    def __init__(self, d: dict) -> None:
        self.type: str = d["type"]
        self.path: str = d.get("path") or ""


class IdMapping:
    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, d: dict) -> None:
        self.container_id: int = d["containerID"]
        self.host_id: int = d["hostID"]
        self.size: int = d["size"]


class Device:
    __slots__ = ("file_mode", "gid", "major", "minor", "path", "type", "uid")

    def __init__(self, d: dict) -> None:
        self.type: str = d["type"]
        self.path: str = d["path"]
        self.major: int = d.get("major", 0)
        self.minor: int = d.get("minor", 0)
        self.file_mode: int | None = d.get("fileMode")
        self.uid: int | None = d.get("uid")
        self.gid: int | None = d.get("gid")


class SeccompArg:
    """One condition on a syscall argument: index, op (SCMP_CMP_*), value, value_two."""

    __slots__ = ("index", "op", "value", "value_two")

    def __init__(self, d: dict) -> None:
        self.index: int = d["index"]
        self.op: str = d["op"]
        self.value: int = d.get("value", 0)
        self.value_two: int = d.get("valueTwo", 0)


class SyscallRule:
    __slots__ = ("action", "args", "errno_ret", "names")

    def __init__(self, d: dict) -> None:
        self.names: list[str] = list(d["names"])
        self.action: str = d["action"]
        self.errno_ret: int | None = d.get("errnoRet")
        self.args = [SeccompArg(a) for a in d.get("args") or []]


class Seccomp:
    __slots__ = ("architectures", "default_action", "default_errno_ret", "flags", "listener_metadata",
                 "listener_path", "syscalls")

    def __init__(self, d: dict) -> None:
        self.default_action: str = d["defaultAction"]
        self.default_errno_ret: int | None = d.get("defaultErrnoRet")
        self.architectures: list[str] = list(d.get("architectures") or [])
        self.flags: list[str] = list(d.get("flags") or [])
        self.listener_path: str = d.get("listenerPath") or ""
        self.listener_metadata: str = d.get("listenerMetadata") or ""
        self.syscalls = [SyscallRule(r) for r in d.get("syscalls") or []]


# ---------------------------------------------------------------- linux.resources
# Each section is None when config.json leaves it out or gives it empty ({} or []), so a driver
# applies exactly the sections present (an empty device list is still a list: it replaces the
# rules). Inside a section, a field left out is None; `update` sends only the fields it changes.


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


class Linux:
    __slots__ = (
        "cgroups_path",
        "devices",
        "gid_mappings",
        "intel_rdt",
        "masked_paths",
        "memory_policy",
        "mount_label",
        "namespaces",
        "net_devices",
        "personality",
        "readonly_paths",
        "resources",
        "rootfs_propagation",
        "seccomp",
        "sysctl",
        "time_offsets",
        "uid_mappings",
    )

    def __init__(self, d: dict) -> None:
        self.namespaces = [Namespace(n) for n in d.get("namespaces") or []]
        self.uid_mappings = [IdMapping(m) for m in d.get("uidMappings") or []]
        self.gid_mappings = [IdMapping(m) for m in d.get("gidMappings") or []]
        self.time_offsets: dict = d.get("timeOffsets") or {}
        self.devices = [Device(x) for x in d.get("devices") or []]
        self.cgroups_path: str | None = d.get("cgroupsPath")
        self.resources = Resources(d["resources"]) if d.get("resources") is not None else None
        self.rootfs_propagation: str = d.get("rootfsPropagation") or ""
        self.masked_paths: list[str] = list(d.get("maskedPaths") or [])
        self.readonly_paths: list[str] = list(d.get("readonlyPaths") or [])
        self.sysctl: dict[str, str] = dict(d.get("sysctl") or {})
        self.seccomp = Seccomp(d["seccomp"]) if d.get("seccomp") is not None else None
        self.mount_label: str = d.get("mountLabel") or ""
        self.personality: dict | None = d.get("personality")
        self.memory_policy: dict | None = d.get("memoryPolicy")
        self.intel_rdt: dict | None = d.get("intelRdt")
        self.net_devices: dict = d.get("netDevices") or {}

    def namespace(self, ns_type: str) -> Namespace | None:
        return next((n for n in self.namespaces if n.type == ns_type), None)


class Config:
    __slots__ = (
        "annotations",
        "domainname",
        "hooks",
        "hostname",
        "linux",
        "mounts",
        "oci_version",
        "process",
        "raw",
        "root_path",
        "root_readonly",
    )

    def __init__(self, d: dict, bundle: str) -> None:
        import os.path

        self.raw = d
        self.oci_version: str = d["ociVersion"]
        root = d.get("root") or {}
        path = root.get("path") or "rootfs"
        self.root_path: str = os.path.normpath(os.path.join(bundle, path))
        self.root_readonly: bool = bool(root.get("readonly", False))
        self.process = Process(d["process"]) if d.get("process") is not None else None
        self.hostname: str | None = d.get("hostname")
        self.domainname: str | None = d.get("domainname")
        self.mounts = [Mount(m) for m in d.get("mounts") or []]
        hooks = d.get("hooks") or {}
        self.hooks: dict[str, list[Hook]] = {k: [Hook(h) for h in hooks.get(k) or []]
                                             for k in HOOK_KINDS}
        self.annotations: dict[str, str] = dict(d.get("annotations") or {})
        self.linux = Linux(d.get("linux") or {})
