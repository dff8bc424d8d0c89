"""The config model: the parts of config.json the runtime acts on, as typed classes.

These are plain slotted classes rather than @dataclass: importing dataclasses pulls in inspect
and costs ~16 ms, paid by every `create`. Each class is built from an already-validated dict
(schema + semantic checks in bundle.py), so constructors trust types and fill in defaults."""

from __future__ import annotations

from ociruntime import lean
from ociruntime.resources import Resources
from ociruntime.spectables import HOOK_KINDS

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
        self.raw = d
        self.oci_version: str = d["ociVersion"]
        root = d.get("root") or {}
        path = root.get("path") or "rootfs"
        self.root_path: str = lean.normpath(lean.join(bundle, path))
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
