"""Checks of a config.json that JSON Schema cannot express (runtime-spec 1.3.0, Linux).

`check_config` runs on every `create` after the schema check passed, so it may assume the types
are right, and it must stay cheap: plain loops over the document, no re, no json, no jsonschema.
Messages have the schema's form: `<json path>: <what is wrong and what is expected>`.
Errors make the config unrunnable; warnings are logged and the container is still created (the
spec says unknown capabilities are warned about, relative mount destinations are deprecated...).
"""

from __future__ import annotations

import errno
import posix

from ociruntime.linux.caps import CAPABILITIES
from ociruntime.schema import format_path, show
from ociruntime.spectables import CLONE_FLAGS, HOOK_KINDS, NS_LINK_NAMES, RLIMITS, SECCOMP_ACTIONS, SECCOMP_FLAGS
from ociruntime.spectables import SECCOMP_ERRNO_ACTIONS as ERRNO_ACTIONS

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re (~5 ms): annotations only
    from collections.abc import Sequence
    from typing import Any

    Path = Sequence[str | int]

SUPPORTED_MAJOR = 1
SUPPORTED_MINOR = 3

CAPABILITY_SETS = ("effective", "bounding", "inheritable", "permitted", "ambient")
CLOCKS = frozenset({"monotonic", "boottime"})  # the clocks time_namespaces(7) can offset
# readlink(/proc/PID/ns/X) prefix -> spec namespace type
_NS_LINK_NAMES = {link: ns for ns, link in NS_LINK_NAMES.items()}
# ioctl(NS_GET_NSTYPE) result (a CLONE_NEW* flag) -> spec namespace type
_NS_CLONE_FLAGS = {flag: ns for ns, flag in CLONE_FLAGS.items()}
_NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h
_IFNAMSIZ = 16


# IPC-namespaced sysctls (ipc/ipc_sysctl.c); fs.mqueue.* are too (ipc/mq_sysctl.c).
SYSCTL_IPC = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"))


class _Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: Path, text: str) -> None:
        self.errors.append(f"{format_path(path)}: {text}")

    def warn(self, path: Path, text: str) -> None:
        self.warnings.append(f"{format_path(path)}: {text}")

    def absolute(self, path: Path, value: str, what: str = "an absolute path") -> bool:
        """Error unless `value` is absolute and free of NUL (which no syscall can take)."""
        if "\0" in value:
            self.error(path, f"{show(value)} contains a NUL byte")
        elif not value.startswith("/"):
            self.error(path, f"{show(value)} must be {what}")
        else:
            return True
        return False

    def no_nul(self, path: Path, value: str) -> None:
        if "\0" in value:
            self.error(path, f"{show(value)} contains a NUL byte")


def check_config(
    doc: dict[str, Any], *, systemd_cgroup: bool = False, require_process: bool = False
) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a schema-valid config.json document."""
    r = _Report()
    _check_version(r, doc["ociVersion"])
    _check_root(r, doc)
    linux = doc.get("linux", {})
    namespaces = _namespace_types(linux)
    if "process" in doc:
        _check_process(r, doc["process"], ["process"])
    elif require_process:
        r.error(["process"], "required property is missing (it names what the container runs)")
    for i, mount in enumerate(doc.get("mounts", [])):
        _check_mount(r, mount, ["mounts", i], namespaces)
    hooks = doc.get("hooks", {})
    for kind in HOOK_KINDS:  # other keys are extensions the schema does not describe: ignored
        for i, hook in enumerate(hooks.get(kind, [])):
            _check_hook(r, hook, ["hooks", kind, i])
    for field in ("hostname", "domainname"):
        if field in doc:
            r.no_nul([field], doc[field])
            if doc[field] and "uts" not in namespaces:
                r.error([field], 'setting it needs a uts namespace: add {"type": "uts"} to linux.namespaces')
    _check_linux(r, linux, namespaces, systemd_cgroup)
    mount_ns = namespaces.get("mount")
    if mount_ns is None or "path" in mount_ns:
        _check_no_mounts(r, doc, "joined by path" if mount_ns else "shared with the runtime")
    return r.errors, r.warnings


# What building the rootfs would mount or write; none of it is done in a mount namespace that is
# not the container's own: it would outlive the container in someone else's mount table.
_MOUNTING_FIELDS = ((("mounts",), "mounts"), (("linux", "maskedPaths"), "masks"),
                    (("linux", "readonlyPaths"), "read-only bind mounts"),
                    (("linux", "devices"), "device nodes"), (("linux", "rootfsPropagation"), "propagation"),
                    (("root", "readonly"), "a read-only remount"))


def _check_no_mounts(r: _Report, doc: dict[str, Any], how: str) -> None:
    for path, what in _MOUNTING_FIELDS:
        value: Any = doc
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value:
            r.error(list(path), f"needs {what} made, but the mount namespace is {how}: they would "
                                'outlive the container in that mount table (add {"type": "mount"} '
                                "to linux.namespaces, or leave this out)")


def check_process(doc: dict[str, Any], prefix: Path = ()) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a schema-valid process object (exec -p process.json: prefix ())."""
    r = _Report()
    _check_process(r, doc, list(prefix))
    return r.errors, r.warnings


# -- version and root --------------------------------------------------------------------------


def parse_semver(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a SemVer 2.0.0 string, None if it is not one."""
    core = version.split("+", 1)[0].split("-", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() and (p == "0" or p[0] != "0") for p in parts):
        return None
    major, minor, patch = (int(p) for p in parts)
    return major, minor, patch


def _check_version(r: _Report, version: str) -> None:
    parsed = parse_semver(version)
    major_text = version.split(".", 1)[0]
    if parsed is None and not (major_text.isdigit() and major_text.isascii()):
        r.error(["ociVersion"], f"{show(version)} is not a SemVer 2.0.0 version (expected e.g. 1.3.0)")
        return
    major = parsed[0] if parsed else int(major_text)
    if major != SUPPORTED_MAJOR:
        r.error(["ociVersion"],
                f"{show(version)} is not supported: expected a 1.x version (this runtime implements 1.3.0)")
    elif parsed is None:
        r.warn(["ociVersion"], f"{show(version)} is not a SemVer 2.0.0 version (expected e.g. 1.3.0)")
    elif parsed[1] > SUPPORTED_MINOR:
        r.warn(["ociVersion"],
               f"{show(version)} is newer than 1.3.0: properties this runtime does not know are ignored")


def _check_root(r: _Report, doc: dict[str, Any]) -> None:
    if "root" not in doc:
        r.error(["root"], "required property is missing (on Linux the container needs a root filesystem)")
    else:
        r.no_nul(["root", "path"], doc["root"]["path"])


# -- process -----------------------------------------------------------------------------------


def _check_process(r: _Report, proc: dict[str, Any], at: list[str | int]) -> None:
    r.absolute([*at, "cwd"], proc["cwd"])
    for i, arg in enumerate(proc["args"]):
        r.no_nul([*at, "args", i], arg)
    if proc["args"] and proc["args"][0] == "":
        r.error([*at, "args", 0], "must not be empty: it names the program to run")
    for i, var in enumerate(proc.get("env", [])):
        _check_env(r, [*at, "env", i], var)
    _check_rlimits(r, proc.get("rlimits", []), [*at, "rlimits"])
    caps = proc.get("capabilities", {})
    for kind in CAPABILITY_SETS:
        for i, name in enumerate(caps.get(kind, [])):
            if name not in CAPABILITIES:
                r.warn([*at, "capabilities", kind, i], f"unknown capability {show(name)} is ignored")
    if "scheduler" in proc:
        _check_scheduler(r, proc["scheduler"], [*at, "scheduler"])
    umask = proc.get("user", {}).get("umask")
    if umask is not None and umask > 0o777:
        r.error([*at, "user", "umask"], f"{umask} is not a umask: expected 0 to 511 (0o777)")
    for field in ("initial", "final"):
        value = proc.get("execCPUAffinity", {}).get(field)
        if value:
            _check_cpu_list(r, [*at, "execCPUAffinity", field], value)
    for field in ("apparmorProfile", "selinuxLabel"):
        if field in proc:
            r.no_nul([*at, field], proc[field])


def _check_env(r: _Report, at: Path, var: str) -> None:
    name, eq, _ = var.partition("=")
    if "\0" in var:
        r.error(at, f"{show(var)} contains a NUL byte")
    elif not eq:
        r.error(at, f"{show(var)} is not of the form KEY=value")
    elif not name:
        r.error(at, f"{show(var)} has an empty variable name")


def _check_rlimits(r: _Report, rlimits: list[dict[str, Any]], at: list[str | int]) -> None:
    seen: dict[str, int] = {}
    for i, rl in enumerate(rlimits):
        kind = rl["type"]
        if kind not in RLIMITS:
            r.error([*at, i, "type"], f"{show(kind)} is not one of {', '.join(sorted(RLIMITS))}")
        elif kind in seen:
            r.error([*at, i, "type"], f"{kind} is set twice (first in {format_path([*at, seen[kind]])})")
        else:
            seen[kind] = i
        if rl["soft"] > rl["hard"]:
            r.error([*at, i], f"soft limit {rl['soft']} is above the hard limit {rl['hard']}")


def _check_scheduler(r: _Report, sched: dict[str, Any], at: list[str | int]) -> None:
    nice = sched.get("nice", 0)
    if not -20 <= nice <= 19:
        r.error([*at, "nice"], f"{nice} is out of range: expected an integer from -20 to 19")
    priority = sched.get("priority", 0)
    if sched["policy"] in ("SCHED_FIFO", "SCHED_RR"):
        if not 1 <= priority <= 99:
            r.error([*at, "priority"], f"{priority} is out of range for {sched['policy']}: expected 1 to 99")
    elif priority != 0:
        r.error([*at, "priority"], f"{priority} is not allowed for {sched['policy']}: expected 0")
    if sched["policy"] == "SCHED_DEADLINE":
        runtime, deadline, period = (sched.get(k, 0) for k in ("runtime", "deadline", "period"))
        if not runtime <= deadline <= (period or deadline):
            r.error(at, "SCHED_DEADLINE needs runtime <= deadline <= period")


def _check_cpu_list(r: _Report, at: Path, value: str) -> None:
    """Kernel list format as in cpuset(7): `0-3,7` (ranges may carry a `:used/group` stride)."""
    for item in value.split(","):
        span, _, stride = item.partition(":")
        low, dash, high = span.partition("-")
        numbers = [low, high] if dash else [low]
        if stride:
            numbers += stride.split("/", 1) if "/" in stride else ["", ""]
        if not all(n.isdigit() and n.isascii() for n in numbers) or (dash and int(low) > int(high)):
            r.error(at, f"{show(value)} is not a list like 0-3,7")
            return


# -- mounts and hooks --------------------------------------------------------------------------


def _check_mount(r: _Report, mount: dict[str, Any], at: list[str | int], namespaces: dict[str, Any]) -> None:
    dest = mount["destination"]
    if "\0" in dest:
        r.error([*at, "destination"], f"{show(dest)} contains a NUL byte")
    elif not dest.startswith("/"):
        r.warn([*at, "destination"], f"{show(dest)} is relative (deprecated): it is taken as relative to /")
    options = mount.get("options", [])
    for i, opt in enumerate(options):
        r.no_nul([*at, "options", i], opt)
    r.no_nul([*at, "source"], mount.get("source", ""))
    if ("bind" in options or "rbind" in options) and not mount.get("source"):
        r.error([*at, "source"], "required for a bind mount")
    if "tmpcopyup" in options and mount.get("type") != "tmpfs":
        r.error([*at, "options"], f"tmpcopyup applies to tmpfs mounts only, not {show(mount.get('type', ''))}")
    idmapped = "idmap" in options or "ridmap" in options
    has_maps = "uidMappings" in mount
    if has_maps and not idmapped:
        r.warn([*at, "options"], "should contain idmap or ridmap when uidMappings/gidMappings are set")
    if idmapped and not has_maps and "user" not in namespaces:
        r.error([*at, "options"], "idmap needs uidMappings/gidMappings on the mount or a user namespace")
    if ("uidMappings" in mount) != ("gidMappings" in mount):
        r.error([*at], "uidMappings and gidMappings go together (an id-mapped mount maps both)")
    for field in ("uidMappings", "gidMappings"):
        _check_mappings(r, mount.get(field, []), [*at, field])


def _check_hook(r: _Report, hook: dict[str, Any], at: list[str | int]) -> None:
    r.absolute([*at, "path"], hook["path"])
    for field in ("args", "env"):
        for i, value in enumerate(hook.get(field, [])):
            r.no_nul([*at, field, i], value)
    for i, var in enumerate(hook.get("env", [])):
        if "=" not in var:
            r.error([*at, "env", i], f"{show(var)} is not of the form KEY=value")


def _check_mappings(r: _Report, mappings: list[dict[str, Any]], at: list[str | int]) -> None:
    for i, m in enumerate(mappings):
        if m["size"] == 0:
            r.error([*at, i, "size"], "must be at least 1")
        for field in ("containerID", "hostID"):
            if m[field] + m["size"] > 1 << 32:
                r.error([*at, i], f"{field} {m[field]} + size {m['size']} goes past 4294967296")


# -- linux -------------------------------------------------------------------------------------


def _namespace_types(linux: dict[str, Any]) -> dict[str, Any]:
    """Namespace type -> its entry (first one wins; duplicates are reported by _check_namespaces)."""
    out: dict[str, Any] = {}
    for ns in linux.get("namespaces", []):
        out.setdefault(ns["type"], ns)
    return out


def _check_linux(r: _Report, linux: dict[str, Any], namespaces: dict[str, Any], systemd: bool) -> None:
    _check_namespaces(r, linux.get("namespaces", []))
    _check_user_namespace(r, linux, namespaces)
    _check_time_offsets(r, linux.get("timeOffsets"), namespaces)
    _check_devices(r, linux.get("devices", []))
    _check_net_devices(r, linux.get("netDevices"), namespaces)
    if "cgroupsPath" in linux:
        _check_cgroups_path(r, linux["cgroupsPath"], systemd)
    _check_resources(r, linux.get("resources", {}))
    for field in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(linux.get(field, [])):
            r.absolute(["linux", field, i], path)
    _check_sysctl(r, linux.get("sysctl", {}), namespaces)
    if "seccomp" in linux:
        _check_seccomp(r, linux["seccomp"])
    if "intelRdt" in linux:
        _check_intel_rdt(r, linux["intelRdt"])
    if "memoryPolicy" in linux:
        _check_memory_policy(r, linux["memoryPolicy"])
    if linux.get("personality", {}).get("flags"):
        r.error(["linux", "personality", "flags"], "no personality flags are supported (the spec defines none)")


def _check_namespaces(r: _Report, namespaces: list[dict[str, Any]]) -> None:
    first: dict[str, int] = {}
    for i, ns in enumerate(namespaces):
        kind = ns["type"]
        if kind in first:
            r.error(["linux", "namespaces", i, "type"],
                    f"{show(kind)} is listed twice (first at {format_path(['linux', 'namespaces', first[kind]])})")
            continue
        first[kind] = i
        if "path" in ns and r.absolute(["linux", "namespaces", i, "path"], ns["path"]):
            _check_namespace_path(r, ["linux", "namespaces", i, "path"], ns["path"], kind)


def namespace_type_of(path: str) -> str | None:
    """The spec type ("network", ...) of the namespace file at `path`, None if not a namespace.

    /proc/PID/ns/* are magic links whose target names the type (`net:[4026531840]`); a namespace
    bind-mounted elsewhere (ip netns) is asked with ioctl(NS_GET_NSTYPE). OSError if unreachable.
    """
    try:
        target = posix.readlink(path)
    except OSError as e:
        if e.errno != errno.EINVAL:  # ENOENT, EACCES...: nothing to inspect
            raise
        target = ""  # not a symlink: maybe a namespace bind-mounted on a file
    name, sep, rest = target.partition(":[")
    if sep and rest.endswith("]"):
        return _NS_LINK_NAMES.get(name.removesuffix("_for_children"))
    import fcntl  # only configs that join namespaces by path pay for it

    fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    try:
        return _NS_CLONE_FLAGS.get(fcntl.ioctl(fd, _NS_GET_NSTYPE))
    except OSError:
        return None  # ENOTTY: a file, but not a namespace
    finally:
        posix.close(fd)


def _check_namespace_path(r: _Report, at: Path, path: str, kind: str) -> None:
    try:
        actual = namespace_type_of(path)
    except FileNotFoundError:
        r.error(at, f"{show(path)} does not exist")
        return
    except OSError as e:
        r.error(at, f"{show(path)} cannot be inspected: {e.strerror}")
        return
    if actual is None:
        r.error(at, f"{show(path)} is not a namespace file")
    elif actual != kind:
        r.error(at, f"{show(path)} is a {actual} namespace, expected a {kind} namespace")


def _check_user_namespace(r: _Report, linux: dict[str, Any], namespaces: dict[str, Any]) -> None:
    has_maps = bool(linux.get("uidMappings") or linux.get("gidMappings"))
    user = namespaces.get("user")
    if user is None and has_maps:
        r.error(["linux", "uidMappings"],
                'uid/gid mappings need a user namespace: add {"type": "user"} to linux.namespaces')
    elif user is not None and "path" not in user:
        for field in ("uidMappings", "gidMappings"):
            if not linux.get(field):
                r.error(["linux", field], "required: a new user namespace needs uid and gid mappings")
    elif user is not None and has_maps:
        r.warn(["linux", "uidMappings"], "ignored: the user namespace is joined by path and keeps its own mappings")
    for field in ("uidMappings", "gidMappings"):
        _check_mappings(r, linux.get(field, []), ["linux", field])


def _check_time_offsets(r: _Report, offsets: dict[str, Any] | None, namespaces: dict[str, Any]) -> None:
    if not offsets:
        return
    time_ns = namespaces.get("time")
    if time_ns is None:
        r.error(["linux", "timeOffsets"], 'needs a time namespace: add {"type": "time"} to linux.namespaces')
    elif "path" in time_ns:
        r.error(["linux", "timeOffsets"], "cannot be set when the time namespace is joined by path")
    for clock, offset in offsets.items():
        if clock not in CLOCKS:
            r.error(["linux", "timeOffsets", clock], f"{show(clock)} is not one of {', '.join(sorted(CLOCKS))}")
        if offset.get("nanosecs", 0) >= 1_000_000_000:
            r.error(["linux", "timeOffsets", clock, "nanosecs"], "must be below 1000000000")


def _check_devices(r: _Report, devices: list[dict[str, Any]]) -> None:
    first: dict[str, int] = {}
    for i, dev in enumerate(devices):
        path = dev["path"]
        if not r.absolute(["linux", "devices", i, "path"], path):
            continue
        if path in first:
            r.error(["linux", "devices", i, "path"],
                    f"{show(path)} is listed twice (first at {format_path(['linux', 'devices', first[path]])})")
        first.setdefault(path, i)


def _is_ifname(name: str, template: bool) -> bool:
    """A name the kernel accepts for a network interface (dev_valid_name); `%d` when templated."""
    if template:
        name = name.replace("%d", "0", 1)
    return (0 < len(name.encode("utf-8", "surrogatepass")) < _IFNAMSIZ and name not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in name))


def _check_net_devices(r: _Report, devices: dict[str, Any] | None, namespaces: dict[str, Any]) -> None:
    if not devices:
        return
    if "network" not in namespaces:
        r.error(["linux", "netDevices"], 'needs a network namespace: add {"type": "network"} to linux.namespaces')
    for host_name, dev in devices.items():
        if not _is_ifname(host_name, template=False):
            r.error(["linux", "netDevices", host_name], f"{show(host_name)} is not a valid interface name")
        if "name" in dev and not _is_ifname(dev["name"], template=True):
            r.error(["linux", "netDevices", host_name, "name"], f"{show(dev['name'])} is not a valid interface name")


def _check_cgroups_path(r: _Report, path: str, systemd: bool) -> None:
    at = ["linux", "cgroupsPath"]
    if "\0" in path:
        r.error(at, f"{show(path)} contains a NUL byte")
        return
    parts = path.split(":")
    if systemd:
        if path and (len(parts) != 3 or "/" in parts[0] or not parts[2]
                     or (parts[0] and not parts[0].endswith(".slice"))):
            r.error(at, f"{show(path)} is not of the form slice:prefix:name (e.g. system.slice:ociruntime:ID), "
                        "as --systemd-cgroup requires")
    elif len(parts) == 3 and parts[0].endswith(".slice"):
        r.warn(at, f"{show(path)} looks like a systemd slice:prefix:name but --systemd-cgroup is not set: "
                   "it is used as a directory path")
    if ".." in path.split("/"):
        r.error(at, f"{show(path)} must not contain .. components")


def _check_resources(r: _Report, res: dict[str, Any]) -> None:
    at = ["linux", "resources"]
    for i, dev in enumerate(res.get("devices", [])):
        access = dev.get("access", "")
        if any(c not in "rwm" for c in access) or len(set(access)) != len(access):
            r.error([*at, "devices", i, "access"], f"{show(access)} is not a combination of r, w and m")
    cpu = res.get("cpu", {})
    if cpu.get("quota", 0) > 0 and cpu.get("burst", 0) > cpu["quota"]:
        r.error([*at, "cpu", "burst"], f"{cpu['burst']} is larger than quota {cpu['quota']}")
    for field in ("cpus", "mems"):
        if cpu.get(field):
            _check_cpu_list(r, [*at, "cpu", field], cpu[field])
    mem = res.get("memory", {})
    limit, swap = mem.get("limit", 0), mem.get("swap", 0)
    if limit > 0 and 0 < swap < limit:
        r.error([*at, "memory", "swap"], f"{swap} is below memory.limit {limit} (swap is memory+swap)")
    if mem.get("swappiness", 0) > 100:
        r.error([*at, "memory", "swappiness"], f"{mem['swappiness']} is out of range: expected 0 to 100")
    for i, hp in enumerate(res.get("hugepageLimits", [])):
        size = hp["pageSize"]
        digits = size[:-2]
        if not (size[-2:] in ("KB", "MB", "GB") and digits.isascii() and digits.isdigit() and digits[0] != "0"):
            r.error([*at, "hugepageLimits", i, "pageSize"], f"{show(size)} is not a size like 2MB or 1GB")
    for key in res.get("unified", {}):
        if "/" in key or key in (".", "..") or "\0" in key:
            r.error([*at, "unified", key], "must name a file of the container's cgroup (no / or ..)")


def _check_sysctl(r: _Report, sysctl: dict[str, str], namespaces: dict[str, Any]) -> None:
    for key, value in sysctl.items():
        parts = key.replace("/", ".").split(".")
        if "\0" in key or "\0" in value or any(p in ("", "..") for p in parts) or key.startswith("/"):
            r.error(["linux", "sysctl", key], "is not a sysctl name like net.ipv4.ip_forward")
            continue
        owner = sysctl_namespace(".".join(parts))
        if owner is None or owner not in namespaces:
            # Anything else is host-wide: writing it from a container would change the host.
            need = f" (it belongs to the {owner} namespace, which the container does not have)" if owner else ""
            r.error(["linux", "sysctl", key], f"not in a separate kernel namespace{need}")


def sysctl_namespace(key: str) -> str | None:
    """The namespace type a sysctl (dotted) belongs to, or None for host-wide ones."""
    if key in SYSCTL_IPC or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def _check_seccomp(r: _Report, sc: dict[str, Any]) -> None:
    at = ["linux", "seccomp"]
    if "defaultErrnoRet" in sc and sc["defaultAction"] not in ERRNO_ACTIONS:
        r.error([*at, "defaultErrnoRet"], f"not allowed with defaultAction {sc['defaultAction']}: "
                                          "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno")
    if sc["defaultAction"] == "SCMP_ACT_NOTIFY":
        r.error([*at, "defaultAction"], "SCMP_ACT_NOTIFY cannot be the default action")
    if "listenerPath" in sc:
        r.absolute([*at, "listenerPath"], sc["listenerPath"])
    for i, call in enumerate(sc.get("syscalls", [])):
        action = call["action"]
        if "errnoRet" in call and action not in ERRNO_ACTIONS:
            r.error([*at, "syscalls", i, "errnoRet"], f"not allowed with action {action}: "
                                                      "only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno")
        if action == "SCMP_ACT_NOTIFY" and "listenerPath" not in sc:
            r.error([*at, "syscalls", i, "action"], "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
        for j, name in enumerate(call["names"]):
            r.no_nul([*at, "syscalls", i, "names", j], name)


def _check_intel_rdt(r: _Report, rdt: dict[str, Any]) -> None:
    at = ["linux", "intelRdt"]
    clos = rdt.get("closID")
    if clos is not None and clos != "/" and ("/" in clos or clos in (".", "..") or "\n" in clos):
        r.error([*at, "closID"], f"{show(clos)} must be a single directory name (or / for the default group)")
    mb = rdt.get("memBwSchema")
    if mb is not None and not mb.startswith("MB:"):
        r.error([*at, "memBwSchema"], f"{show(mb)} must start with MB:")
    l3 = rdt.get("l3CacheSchema")
    if l3 is not None and not l3.startswith("L3"):
        r.warn([*at, "l3CacheSchema"], f"{show(l3)} should start with L3:")
    lines = [([*at, f], rdt[f]) for f in ("memBwSchema", "l3CacheSchema") if f in rdt]
    lines += [([*at, "schemata", i], s) for i, s in enumerate(rdt.get("schemata", []))]
    for path, text in lines:
        if "\n" in text:
            r.error(path, "must not contain newlines")


def _check_memory_policy(r: _Report, policy: dict[str, Any]) -> None:
    at = ["linux", "memoryPolicy"]
    mode, nodes, flags = policy["mode"], policy.get("nodes", ""), policy.get("flags", [])
    if mode in ("MPOL_DEFAULT", "MPOL_LOCAL") and nodes:
        r.error([*at, "nodes"], f"must be empty for {mode}")
    elif mode not in ("MPOL_DEFAULT", "MPOL_LOCAL", "MPOL_PREFERRED") and not nodes:
        r.error([*at, "nodes"], f"required for {mode}: at least one memory node")
    if nodes:
        _check_cpu_list(r, [*at, "nodes"], nodes)
    if "MPOL_F_STATIC_NODES" in flags and "MPOL_F_RELATIVE_NODES" in flags:
        r.error([*at, "flags"], "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")


def unsupported(config) -> list[str]:
    """Parts of a valid config this runtime does not implement (the features document says
    so too): refused with a clear message rather than silently ignored. Run on the typed
    config, after check_config."""
    linux = config.linux
    problems = []
    if linux.intel_rdt:
        problems.append("linux.intelRdt: not supported by ociruntime (Intel RDT needs the resctrl "
                        "filesystem; no machine this runtime is tested on has it, so it is refused, not "
                        "applied untested)")
    if config.process is not None and config.process.scheduler:
        from ociruntime.linux import procattrs

        problems += procattrs.unsupported_scheduler(config.process.scheduler)
    if linux.seccomp is not None:
        for i, rule in enumerate(linux.seccomp.syscalls):
            if rule.action not in SECCOMP_ACTIONS:
                problems.append(f"linux.seccomp.syscalls[{i}].action: {rule.action} is not "
                                f"supported (supported: {', '.join(sorted(SECCOMP_ACTIONS))})")
        if linux.seccomp.default_action not in SECCOMP_ACTIONS:
            problems.append(f"linux.seccomp.defaultAction: {linux.seccomp.default_action} "
                            "is not supported")
        for i, flag in enumerate(linux.seccomp.flags):
            if flag not in SECCOMP_FLAGS:
                problems.append(f"linux.seccomp.flags[{i}]: {flag} is not supported")
    for i, m in enumerate(config.mounts):
        if m.idmap() and not m.is_bind():
            problems.append(f"mounts[{i}].options: {m.idmap()} is supported on bind mounts only")
    return problems
